from django.utils.functional import SimpleLazyObject

from core.choices import Role
from core.workspaces import user_workspaces


def _role_labels(user) -> list[str]:
    labels = [Role(role).label for role in Role.values if role in user.roles]
    if not labels and user.is_superuser:
        labels = ["Superuser"]
    return labels


def workspaces(request):
    """The signed-in user's workspaces and role names, for the nav and the home page.

    Lazy, so pages that never show them (API docs, admin) cost no group query.
    """
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"workspaces": [], "user_role_labels": []}
    return {
        "workspaces": SimpleLazyObject(lambda: user_workspaces(user)),
        "user_role_labels": SimpleLazyObject(lambda: _role_labels(user)),
    }
