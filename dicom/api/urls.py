from django.urls import path

from dicom.api.views import OrthancNudgeApi

urlpatterns = [
    path("orthanc/nudge/", OrthancNudgeApi.as_view(), name="dicom-orthanc-nudge"),
]
