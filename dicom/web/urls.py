from django.urls import path

from dicom.web import van

urlpatterns = [
    path("workspace/van/qc/", van.van_qc, name="van-qc"),
]

# The hospital's orders page (booking form and list).
from dicom.web import orders  # noqa: E402

urlpatterns += [
    path("workspace/hospital/orders/", orders.hospital_orders, name="hospital-orders"),
]
