from django.urls import path

from telerad.api.reports import (
    AddendumSignApi,
    ReportAddendaApi,
    ReportDetailApi,
    ReportHtmlApi,
    ReportPdfApi,
    TaskReportApi,
    TaskReportPreliminaryApi,
    TaskReportSignApi,
)

urlpatterns = [
    path("tasks/<int:task_id>/report/", TaskReportApi.as_view(), name="reading-task-report"),
    path(
        "tasks/<int:task_id>/report/preliminary/",
        TaskReportPreliminaryApi.as_view(),
        name="reading-task-report-preliminary",
    ),
    path("tasks/<int:task_id>/report/sign/", TaskReportSignApi.as_view(), name="reading-task-report-sign"),
    path("reports/<int:report_id>/", ReportDetailApi.as_view(), name="reading-report"),
    path("reports/<int:report_id>/pdf/", ReportPdfApi.as_view(), name="reading-report-pdf"),
    path("reports/<int:report_id>/html/", ReportHtmlApi.as_view(), name="reading-report-html"),
    path("reports/<int:report_id>/addenda/", ReportAddendaApi.as_view(), name="reading-report-addenda"),
    path("addenda/<int:addendum_id>/sign/", AddendumSignApi.as_view(), name="reading-addendum-sign"),
]
