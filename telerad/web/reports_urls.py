from django.urls import path

from telerad.web import reports

urlpatterns = [
    path(
        "workspace/reading/tasks/<int:task_id>/report/",
        reports.report_editor,
        name="reading-report-editor",
    ),
]
