"""The report editor in the reading workspace: the template's form, then the signed report.

The form is built from the template definition. Required fields are marked but not enforced
by the form: a draft may be incomplete, and the services are the one authority (their
refusals are shown next to the field they name).
"""

from __future__ import annotations

from typing import Any, cast

from django import forms
from django.conf import settings
from django.contrib import messages
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from core.choices import Role
from core.exceptions import DomainError, NotFound
from core.models import User
from core.workspaces import workspace_required
from telerad.choices import ReportStatus, TaskStatus
from telerad.models import Report
from telerad.report_templates import BOOLEAN, CHOICE, ReportTemplate, template_for, template_get
from telerad.reports_render import report_context
from telerad.selectors_reports import report_for_task_get, report_of_authorised_task, task_get_for_report
from telerad.services.reports import (
    addendum_add,
    addendum_sign,
    report_mark_preliminary,
    report_save_draft,
    report_sign,
)

_YES_NO = [("", "—"), ("yes", "Yes"), ("no", "No")]


class ReportForm(forms.Form):
    """The structured fields of one template, free text, and the critical-finding flag."""

    free_text = forms.CharField(
        required=False, label="Additional comment", widget=forms.Textarea(attrs={"rows": 3})
    )
    critical = forms.BooleanField(required=False, label="Critical finding: notify the hospital now")
    critical_summary = forms.CharField(required=False, max_length=300, label="Critical finding summary")

    def __init__(self, *args: Any, template: ReportTemplate, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.template = template
        structured: dict[str, forms.Field] = {}
        for spec in template.fields:
            label = f"{spec.label} *" if spec.required else spec.label
            attrs = {"aria-required": "true"} if spec.required else {}
            field: forms.Field
            if spec.type == CHOICE:
                field = forms.ChoiceField(
                    choices=[("", "—"), *[(c, c) for c in spec.choices]],
                    widget=forms.Select(attrs=attrs),
                )
            elif spec.type == BOOLEAN:
                # Three states: a required yes/no must be answered, not defaulted to "no".
                field = forms.ChoiceField(choices=_YES_NO, widget=forms.Select(attrs=attrs))
            else:
                field = forms.CharField(widget=forms.Textarea(attrs={"rows": 4, **attrs}), strip=True)
            field.required = False
            field.label = label
            field.help_text = spec.help_text
            structured[f"f_{spec.name}"] = field
        # Structured fields first, in the template's order.
        self.fields = {**structured, **self.fields}

    @staticmethod
    def initial_from(report: Report | None) -> dict[str, Any]:
        if report is None:
            return {}
        initial: dict[str, Any] = {"free_text": report.free_text}
        for name, value in report.fields.items():
            initial[f"f_{name}"] = ("yes" if value else "no") if isinstance(value, bool) else value
        return initial

    def structured_fields(self) -> list[forms.BoundField]:
        return [self[f"f_{spec.name}"] for spec in self.template.fields]

    def report_fields(self) -> dict[str, Any]:
        """The service's ``fields``: empty answers left out, yes/no as booleans."""
        data: dict[str, Any] = {}
        for spec in self.template.fields:
            value = self.cleaned_data.get(f"f_{spec.name}")
            if value in (None, ""):
                continue
            data[spec.name] = (value == "yes") if spec.type == BOOLEAN else value
        return data

    def add_domain_error(self, exc: DomainError) -> None:
        name = exc.extra.get("field")
        target = f"f_{name}" if name and f"f_{name}" in self.fields else name
        self.add_error(target if target in self.fields else None, exc.message)


class AddendumForm(forms.Form):
    text = forms.CharField(label="Addendum", widget=forms.Textarea(attrs={"rows": 4}))


def _save_and_sign(user: User, task, form: ReportForm, report: Report | None, request: HttpRequest) -> Report:
    fields, free_text = form.report_fields(), form.cleaned_data["free_text"].strip()
    with transaction.atomic():
        if report is None or report.fields != fields or report.free_text != free_text:
            report_save_draft(actor=user, task=task, fields=fields, free_text=free_text, request=request)
        return report_sign(
            actor=user,
            task=task,
            critical=form.cleaned_data["critical"],
            critical_summary=form.cleaned_data["critical_summary"],
            request=request,
        )


@workspace_required(Role.RADIOLOGIST)
def report_editor(request: HttpRequest, task_id: int) -> HttpResponse:
    user = cast(User, request.user)
    try:
        task = task_get_for_report(user, task_id)
    except NotFound as exc:
        raise Http404(exc.message)
    report = report_for_task_get(user, task, request=request) if request.method == "GET" else None
    if request.method != "GET":
        report = report_of_authorised_task(task)
    template = template_get(report.template) if report else template_for(task.modality, task.body_part)
    form = ReportForm(template=template, initial=ReportForm.initial_from(report))
    addendum_form = AddendumForm()
    status_code = 200
    if request.method == "POST":
        action = request.POST.get("action", "")
        try:
            if action in ("save", "preliminary", "sign"):
                form = ReportForm(request.POST, template=template)
                if form.is_valid():
                    if action == "save":
                        report_save_draft(
                            actor=user,
                            task=task,
                            fields=form.report_fields(),
                            free_text=form.cleaned_data["free_text"],
                            request=request,
                        )
                        messages.success(request, "Draft saved.")
                    elif action == "preliminary":
                        report_mark_preliminary(
                            actor=user,
                            task=task,
                            fields=form.report_fields(),
                            free_text=form.cleaned_data["free_text"],
                            request=request,
                        )
                        messages.success(request, "Report marked preliminary: the hospital can see it.")
                    else:
                        _save_and_sign(user, task, form, report, request)
                        messages.success(request, "Report signed. It is final; changes go in addenda.")
                    return redirect("reading-report-editor", task_id=task.pk)
            elif action == "addendum" and report is not None:
                addendum_form = AddendumForm(request.POST)
                if addendum_form.is_valid():
                    addendum_add(
                        actor=user, report=report, text=addendum_form.cleaned_data["text"], request=request
                    )
                    messages.success(request, "Addendum added. Sign it to send it to the hospital.")
                    return redirect("reading-report-editor", task_id=task.pk)
            elif action == "addendum_sign" and report is not None:
                addendum = report.addenda.filter(pk=request.POST.get("addendum_id") or 0).first()
                if addendum is None:
                    raise Http404("No such addendum")
                addendum_sign(actor=user, addendum=addendum, request=request)
                messages.success(request, "Addendum signed.")
                return redirect("reading-report-editor", task_id=task.pk)
            else:
                form.add_error(None, "Unknown action.")
                status_code = 400
        except DomainError as exc:
            status_code = exc.status_code
            if action in ("addendum",):
                addendum_form.add_error("text" if exc.extra.get("field") == "text" else None, exc.message)
            else:
                form.add_domain_error(exc)
        if status_code == 200:
            status_code = 400  # the form was invalid
    task.refresh_from_db()
    report = report_of_authorised_task(task)
    context: dict[str, Any] = {
        "task": task,
        "report": report,
        "template": template,
        "form": form,
        "addendum_form": addendum_form,
        "is_claimant": task.claimed_by_id == user.pk and task.status == TaskStatus.CLAIMED,
        "claim_expires_at": task.claim_expires_at,
        # The page renews the claim while it stays open: a third of the lease, in milliseconds.
        "renew_every_ms": settings.READING_CLAIM_MINUTES * 60_000 // 3,
        "is_final": report is not None and report.status == ReportStatus.FINAL,
    }
    if context["is_final"]:
        assert report is not None
        context.update(report_context(report))  # the variables report_body.html renders
        context["my_unsigned_addenda"] = [
            a for a in report.addenda.all() if a.signed_at is None and a.author_id == user.pk
        ]
    return render(request, "telerad/report_editor.html", context, status=status_code)
