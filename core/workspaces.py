"""The workspace registry: one workspace per role, the single source for the home page cards,
the navigation and the permission check, so the three can never disagree.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import wraps

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404

from core.choices import Role


@dataclass(frozen=True)
class Workspace:
    """One role's workspace: the page its holders work in, and how it is introduced."""

    role: str
    slug: str
    title: str
    description: str
    # What the issue that builds this workspace will put here; shown on the placeholder page.
    coming: str
    # Extra (label, url) links shown on the home card, for tools that live outside the workspace.
    links: tuple[tuple[str, str], ...] = field(default=())

    @property
    def url_name(self) -> str:
        return f"workspace-{self.slug}"

    @property
    def role_label(self) -> str:
        return Role(self.role).label


WORKSPACES: tuple[Workspace, ...] = (
    Workspace(
        role=Role.DISPATCHER,
        slug="dispatch",
        title="Dispatch",
        description="Units, crews and licences; visit plans; live fleet map; incidents and surge.",
        coming="register pages (the register is in the API today: /api/units/).",
        links=(
            ("Live fleet map", "/fleet/map/"),
            ("Visit plans", "/fleet/plans/"),
            ("Coverage and unit withdrawal", "/fleet/coverage/"),
        ),
    ),
    Workspace(
        role=Role.TECHNOLOGIST,
        slug="van",
        title="Van",
        description="Today's booked exams on this unit, and QC results while the patient is on site.",
        coming="today's modality worklist and scan status.",
        links=(("Acquisition QC of this van's studies (live)", "/workspace/van/qc/"),),
    ),
    Workspace(
        role=Role.RADIOLOGIST,
        slug="reading",
        title="Reading",
        description="Live worklist by priority and SLA; claim, view, report and sign studies.",
        coming="",
        links=(
            ("Reading worklist (live)", "/workspace/reading/worklist/"),
            ("Peer reviews assigned to you", "/workspace/reading/peer-reviews/"),
        ),
    ),
    Workspace(
        role=Role.HOSPITAL_USER,
        slug="hospital",
        title="Hospital portal",
        description="Request visits, book exams, follow studies and read reports.",
        coming="",
        links=(
            ("Van visits: request, follow, messages", "/workspace/hospital/requests/"),
            ("Book and track exams", "/workspace/hospital/orders/"),
            ("Studies, reports and critical results", "/workspace/hospital/studies/"),
        ),
    ),
    Workspace(
        role=Role.QC_OFFICER,
        slug="quality",
        title="Quality",
        description="Acquisition QC, peer review, turnaround against SLA and the audit trail.",
        coming="",
        links=(
            (
                "Dashboards: turnaround, QC, peer review, utilisation, coverage",
                "/workspace/quality/dashboard/",
            ),
            ("Audit trail: search, who has seen a patient, ATNA export", "/workspace/quality/audit/"),
            ("Reconciliation queue: studies that matched no order", "/workspace/quality/reconciliation/"),
        ),
    ),
    Workspace(
        role=Role.ADMIN,
        slug="admin",
        title="Administration",
        description="Organisations, users, roles, reading contracts and SLA policies.",
        coming="organisation, user, contract and SLA policy pages (today in the Django admin and the API).",
        links=(
            ("Django admin", "/admin/"),
            ("API documentation", "/api/docs/"),
            ("Quality dashboards", "/workspace/quality/dashboard/"),
            ("Audit trail", "/workspace/quality/audit/"),
            ("Live fleet map", "/fleet/map/"),
            ("Visit plans", "/fleet/plans/"),
            ("Coverage and unit withdrawal", "/fleet/coverage/"),
        ),
    ),
)

_BY_SLUG = {ws.slug: ws for ws in WORKSPACES}
_BY_ROLE = {ws.role: ws for ws in WORKSPACES}

# A role added to Role without a workspace would leave its users on an empty home page.
if set(_BY_ROLE) != set(Role.values):
    raise RuntimeError(f"core.workspaces: roles without a workspace: {set(Role.values) - set(_BY_ROLE)}")


def workspace_get(slug: str) -> Workspace:
    try:
        return _BY_SLUG[slug]
    except KeyError:
        raise Http404("No such workspace")


def workspace_for_role(role: str) -> Workspace:
    return _BY_ROLE[role]


def user_can_enter(user, workspace: Workspace) -> bool:
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return False
    return user.is_superuser or user.has_role(workspace.role)


def user_workspaces(user) -> list[Workspace]:
    """The workspaces the user may enter, in Role order."""
    return [ws for ws in WORKSPACES if user_can_enter(user, ws)]


def workspace_required(role: str) -> Callable:
    """Decorate a view so only holders of ``role`` (or superusers) reach it.

    Anonymous users are sent to the login page; signed-in users without the role get 403,
    so a workspace's existence is not hidden but its content is.
    """
    workspace = workspace_for_role(role)

    def decorator(view: Callable) -> Callable:
        @wraps(view)
        def wrapped(request, *args, **kwargs):
            if not user_can_enter(request.user, workspace):
                raise PermissionDenied(
                    f"The {workspace.title} workspace needs the {workspace.role_label} role."
                )
            return view(request, *args, **kwargs)

        return login_required(wrapped)

    return decorator
