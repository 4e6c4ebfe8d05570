from django.urls import path

from dicom.web import orders, reconciliation, van

urlpatterns = [
    path("workspace/van/qc/", van.van_qc, name="van-qc"),
    path("workspace/hospital/orders/", orders.hospital_orders, name="hospital-orders"),
    path("workspace/quality/reconciliation/", reconciliation.reconciliation, name="quality-reconciliation"),
]
