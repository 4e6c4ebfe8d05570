from django.urls import path

from telerad.web import portal

urlpatterns = [
    path("workspace/hospital/studies/", portal.hospital_studies, name="hospital-studies"),
    path(
        "workspace/hospital/studies/critical/<int:result_id>/acknowledge/",
        portal.critical_acknowledge,
        name="hospital-critical-acknowledge",
    ),
    path(
        "workspace/hospital/studies/<int:study_id>/report/", portal.study_report, name="hospital-study-report"
    ),
    path(
        "workspace/hospital/studies/<int:study_id>/report.pdf",
        portal.study_report_pdf,
        name="hospital-study-report-pdf",
    ),
]
