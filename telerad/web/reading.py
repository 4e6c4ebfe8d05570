"""The radiologist's live worklist page: claim and release with htmx; live refresh on events."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST
from rest_framework.exceptions import ValidationError

from core.choices import Role
from core.exceptions import DomainError, NotFound
from core.workspaces import workspace_required
from fleet.choices import Modality
from telerad.api.worklist import task_row, worklist_filters
from telerad.choices import TaskStatus
from telerad.models import ReadingEvent
from telerad.selectors import tasks_visible_to_reader, worklist_hospitals, worklist_page
from telerad.services.claims import task_claim, task_release

PAGE_SIZE = 50
_FILTER_KEYS = ("modality", "hospital", "status", "overdue")


def _filters(params) -> tuple[dict[str, Any], str]:
    """Selector filters from the request; a bad value is reported and the filters are dropped."""
    raw = {key: params.get(key) for key in (*_FILTER_KEYS, "page") if params.get(key)}
    try:
        return worklist_filters({**raw, "page_size": PAGE_SIZE}), ""
    except ValidationError as exc:
        detail = exc.detail
        field, messages = next(iter(detail.items())) if isinstance(detail, dict) else ("filter", detail)
        return {"page_size": PAGE_SIZE}, f"Ignored the filters: {field}: {messages[0]}"


def _render(request: HttpRequest, params, *, message: str = "", error: str = "") -> HttpResponse:
    filters, filter_error = _filters(params)
    now = timezone.now()
    page = worklist_page(request.user, now=now, **filters)
    shown = {key: params.get(key, "") for key in _FILTER_KEYS} if not filter_error else {}
    context = {
        "rows": [task_row(task, user=request.user, now=now) for task in page.rows],
        "page": page,
        "filters": shown,
        "query": urlencode({k: v for k, v in shown.items() if v}),
        "message": message,
        "error": error or filter_error,
    }
    if request.headers.get("HX-Request"):
        return render(request, "telerad/_worklist_rows.html", context)
    context.update(
        {
            "modalities": Modality.choices,
            "statuses": TaskStatus.choices,
            "hospitals": worklist_hospitals(request.user),
            # The live script resumes from here, so nothing committed after this render is missed.
            "last_seq": ReadingEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0,
        }
    )
    return render(request, "telerad/worklist.html", context)


@workspace_required(Role.RADIOLOGIST)
@require_GET
def worklist(request: HttpRequest) -> HttpResponse:
    return _render(request, request.GET)


def _act(request: HttpRequest, task_id: int, action) -> HttpResponse:
    message = error = ""
    try:
        task = tasks_visible_to_reader(request.user).filter(pk=task_id).first()
        if task is None:
            raise NotFound("That study is not on your worklist.")
        done = action(actor=request.user, task=task, request=request)
        accession = done.study.accession_number or f"task {done.pk}"
        if done.status == TaskStatus.CLAIMED:
            message = f"You hold {accession} until {timezone.localtime(done.claim_expires_at):%H:%M}."
        else:
            message = f"Released {accession}."
    except DomainError as exc:
        error = exc.message
    if not request.headers.get("HX-Request"):
        return redirect("reading-worklist-page")
    return _render(request, request.POST, message=message, error=error)


@workspace_required(Role.RADIOLOGIST)
@require_POST
def worklist_claim(request: HttpRequest, task_id: int) -> HttpResponse:
    return _act(request, task_id, task_claim)


@workspace_required(Role.RADIOLOGIST)
@require_POST
def worklist_release(request: HttpRequest, task_id: int) -> HttpResponse:
    return _act(request, task_id, task_release)
