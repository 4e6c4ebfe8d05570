from django.urls import path

from telerad.api.shift import MyShiftApi
from telerad.api.worklist import TaskAssignApi, TaskClaimApi, TaskReleaseApi, TaskRenewApi, WorklistApi

urlpatterns = [
    path("worklist/", WorklistApi.as_view(), name="reading-worklist"),
    path("tasks/<int:task_id>/claim/", TaskClaimApi.as_view(), name="reading-task-claim"),
    path("tasks/<int:task_id>/renew/", TaskRenewApi.as_view(), name="reading-task-renew"),
    path("tasks/<int:task_id>/release/", TaskReleaseApi.as_view(), name="reading-task-release"),
    path("tasks/<int:task_id>/assign/", TaskAssignApi.as_view(), name="reading-task-assign"),
    path("me/shift/", MyShiftApi.as_view(), name="reading-my-shift"),
]
