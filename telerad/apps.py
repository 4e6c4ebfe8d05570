from django.apps import AppConfig


class TeleradConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "telerad"
