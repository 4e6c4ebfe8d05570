"""The dispatcher's planner pages: recent plans with a form to start one, and a plan's review.

The review page polls a small partial (htmx, every second) while the plan is queued or
running; once it is done the same partial carries the result (timeline, visits with lock
toggles, unserved requests, stats, publish), so the page shows it without a reload. Lock,
publish and re-run are plain CSRF-protected POST forms that htmx enhances; each view calls
one service (``fleet.services.plans``).
"""

from __future__ import annotations

import datetime as dt
from typing import cast

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from core.exceptions import AccessDenied, DomainError
from core.models import Organisation, User
from fleet.models import Plan
from fleet.selectors_plans import (
    plan_for_operator,
    plan_is_finished,
    plan_operator_for_user,
    plan_timeline,
    plans_recent,
)
from fleet.services.plans import MAX_DAYS, TIME_LIMIT_RANGE, plan_lock_set, plan_publish, plan_request


class PlanRequestForm(forms.Form):
    start_date = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}))
    days = forms.IntegerField(min_value=1, max_value=MAX_DAYS, initial=7)
    time_limit_s = forms.FloatField(
        label="Time limit (s)", min_value=TIME_LIMIT_RANGE[0], max_value=TIME_LIMIT_RANGE[1], initial=5
    )


class PlanLockForm(forms.Form):
    request_id = forms.CharField(max_length=20)
    locked = forms.TypedChoiceField(choices=[("1", "lock"), ("0", "unlock")], coerce=lambda v: v == "1")


def _operator(request: HttpRequest) -> Organisation:
    operator = plan_operator_for_user(request.user)
    if operator is None:
        raise PermissionDenied("Plans are for the operator's dispatchers and administrators.")
    return operator


def _actor(request: HttpRequest) -> User:
    return cast(User, request.user)  # login_required: never anonymous here


def _plan(request: HttpRequest, plan_id: int) -> Plan:
    # One answer for "not yours", "no such plan" and "not a dispatcher": an id reveals nothing.
    operator = plan_operator_for_user(request.user)
    plan = plan_for_operator(operator_id=operator.pk, plan_id=plan_id) if operator else None
    if plan is None:
        raise Http404("No such plan")
    return plan


def _is_htmx(request: HttpRequest) -> bool:
    return request.headers.get("HX-Request") == "true"


def _body_context(plan: Plan, *, error: str = "", notice: str = "") -> dict:
    finished = plan_is_finished(plan)
    return {
        "plan": plan,
        "finished": finished,
        "timeline": plan_timeline(plan) if finished else None,
        "error": error,
        "notice": notice,
    }


@require_http_methods(["GET", "POST"])
@login_required
def plans_index(request: HttpRequest) -> HttpResponse:
    operator = _operator(request)
    if request.method == "POST":
        form = PlanRequestForm(request.POST)
        if form.is_valid():
            try:
                plan = plan_request(actor=_actor(request), operator=operator, **form.cleaned_data)
            except AccessDenied as exc:
                raise PermissionDenied(exc.message) from exc
            except DomainError as exc:
                field = exc.extra.get("field")
                form.add_error(field if field in form.fields else None, exc.message)
            else:
                return redirect("fleet-plan", plan_id=plan.pk)
        status = 400
    else:
        form = PlanRequestForm(initial={"start_date": timezone.localdate() + dt.timedelta(days=1)})
        status = 200
    context = {"form": form, "plans": plans_recent(operator_id=operator.pk), "operator": operator}
    return render(request, "fleet/plans.html", context, status=status)


@require_GET
@login_required
def plan_detail(request: HttpRequest, plan_id: int) -> HttpResponse:
    plan = _plan(request, plan_id)
    return render(request, "fleet/plan_detail.html", _body_context(plan))


@require_GET
@login_required
def plan_progress(request: HttpRequest, plan_id: int) -> HttpResponse:
    """The review page's body: progress while the plan runs, the result once it is finished."""
    plan = _plan(request, plan_id)
    return render(request, "fleet/_plan_body.html", _body_context(plan))


def _after_action(request: HttpRequest, plan: Plan, *, error: str = "", notice: str = "") -> HttpResponse:
    if _is_htmx(request):
        plan.refresh_from_db()
        return render(request, "fleet/_plan_body.html", _body_context(plan, error=error, notice=notice))
    if error:
        messages.error(request, error)
    elif notice:
        messages.success(request, notice)
    return redirect("fleet-plan", plan_id=plan.pk)


@require_POST
@login_required
def plan_lock(request: HttpRequest, plan_id: int) -> HttpResponse:
    plan = _plan(request, plan_id)
    form = PlanLockForm(request.POST)
    if not form.is_valid():
        return _after_action(request, plan, error="Choose a visit to lock or unlock.")
    try:
        plan = plan_lock_set(
            actor=_actor(request),
            plan=plan,
            request_id=form.cleaned_data["request_id"],
            locked=form.cleaned_data["locked"],
        )
    except AccessDenied as exc:
        raise PermissionDenied(exc.message) from exc
    except DomainError as exc:
        return _after_action(request, plan, error=exc.message)
    return _after_action(request, plan)


@require_POST
@login_required
def plan_publish_view(request: HttpRequest, plan_id: int) -> HttpResponse:
    plan = _plan(request, plan_id)
    try:
        plan = plan_publish(actor=_actor(request), plan=plan)
    except AccessDenied as exc:
        raise PermissionDenied(exc.message) from exc
    except DomainError as exc:
        return _after_action(request, plan, error=exc.message)
    return _after_action(request, plan, notice="Published: the visits are scheduled and hospitals notified.")


@require_POST
@login_required
def plan_rerun(request: HttpRequest, plan_id: int) -> HttpResponse:
    """Plan the same horizon again (from today at the earliest), keeping this plan's locked visits."""
    plan = _plan(request, plan_id)
    start = max(plan.start_date, timezone.localdate())
    days = plan.days - (start - plan.start_date).days
    if days < 1:
        messages.error(request, "This plan's horizon is over: start a new plan instead.")
        return redirect("fleet-plan", plan_id=plan.pk)
    try:
        new = plan_request(
            actor=_actor(request),
            operator=plan.operator,
            start_date=start,
            days=days,
            time_limit_s=plan.time_limit_s,
            base_plan=plan,
        )
    except AccessDenied as exc:
        raise PermissionDenied(exc.message) from exc
    except DomainError as exc:
        messages.error(request, exc.message)
        return redirect("fleet-plan", plan_id=plan.pk)
    return redirect("fleet-plan", plan_id=new.pk)
