from django.urls import path

from telerad.web import reading

urlpatterns = [
    path("workspace/reading/worklist/", reading.worklist, name="reading-worklist-page"),
    path(
        "workspace/reading/worklist/tasks/<int:task_id>/claim/",
        reading.worklist_claim,
        name="reading-worklist-claim",
    ),
    path(
        "workspace/reading/worklist/tasks/<int:task_id>/release/",
        reading.worklist_release,
        name="reading-worklist-release",
    ),
]
