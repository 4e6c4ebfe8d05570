from django.urls import path

from dicom.api.reconciliation import ReconciliationLinkApi, ReconciliationQueueApi, StudyQCReleaseApi
from dicom.api.views import OrthancNudgeApi

urlpatterns = [
    path("orthanc/nudge/", OrthancNudgeApi.as_view(), name="dicom-orthanc-nudge"),
    path("reconciliation/", ReconciliationQueueApi.as_view(), name="dicom-reconciliation"),
    path(
        "reconciliation/<int:study_id>/link/",
        ReconciliationLinkApi.as_view(),
        name="dicom-reconciliation-link",
    ),
    path("studies/<int:study_id>/qc-release/", StudyQCReleaseApi.as_view(), name="dicom-study-qc-release"),
]

# Orders (booked exams) and the Modality Worklist the Orthanc plugin serves from them.
from dicom.api.orders import OrderCancelApi, OrderDetailApi, OrderListCreateApi, OrderStartApi  # noqa: E402
from dicom.api.worklist import OrthancWorklistApi  # noqa: E402

urlpatterns += [
    path("orders/", OrderListCreateApi.as_view(), name="dicom-orders"),
    path("orders/<int:pk>/", OrderDetailApi.as_view(), name="dicom-order"),
    path("orders/<int:pk>/cancel/", OrderCancelApi.as_view(), name="dicom-order-cancel"),
    path("orders/<int:pk>/start/", OrderStartApi.as_view(), name="dicom-order-start"),
    path("orthanc/worklist/", OrthancWorklistApi.as_view(), name="dicom-orthanc-worklist"),
]

# De-identified exports for teaching and research: asked for per study, made by a worker.
from dicom.api.deid import DeidExportDetailApi, DeidExportListApi, StudyDeidExportRequestApi  # noqa: E402

urlpatterns += [
    path(
        "studies/<int:study_id>/deid-exports/",
        StudyDeidExportRequestApi.as_view(),
        name="dicom-study-deid-exports",
    ),
    path("deid-exports/", DeidExportListApi.as_view(), name="dicom-deid-exports"),
    path("deid-exports/<int:pk>/", DeidExportDetailApi.as_view(), name="dicom-deid-export"),
]
