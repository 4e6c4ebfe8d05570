from django.apps import AppConfig


class DicomConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "dicom"
