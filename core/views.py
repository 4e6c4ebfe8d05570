from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from core.workspaces import Workspace, workspace_required


@login_required
def home(request):
    # The cards come from the ``workspaces`` context processor, the same list the nav shows.
    return render(request, "core/home.html")


class LogoutView(auth_views.LogoutView):
    """POST-only logout that confirms it on the login page (workstations are shared on wards)."""

    def post(self, request, *args, **kwargs):
        was_signed_in = request.user.is_authenticated
        response = super().post(request, *args, **kwargs)
        if was_signed_in:
            messages.info(request, "You have signed out.")
        return response


def workspace_placeholder(workspace: Workspace):
    """A permission-checked stand-in for a workspace that a later issue builds."""

    @workspace_required(workspace.role)
    def view(request):
        return render(request, "core/workspace_placeholder.html", {"workspace": workspace})

    view.__name__ = f"workspace_{workspace.slug}"
    return view
