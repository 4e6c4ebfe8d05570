import math

from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import AuthenticationForm
from django.shortcuts import render

from core.http import client_ip
from core.selectors_auth import login_lockout_seconds_left
from core.services.auth_audit import auth_login_record, auth_login_refused_record, auth_logout_record
from core.workspaces import Workspace, workspace_required


@login_required
def home(request):
    # The cards come from the ``workspaces`` context processor, the same list the nav shows.
    return render(request, "core/home.html")


class LoginView(auth_views.LoginView):
    """The login page; every sign-in and every failed attempt is audited."""

    redirect_authenticated_user = True

    def form_valid(self, form):
        response = super().form_valid(form)
        auth_login_record(user=form.get_user(), request=self.request, channel="web")
        return response

    def form_invalid(self, form):
        # A lockout also answers through AxesMiddleware, which swaps in login_locked_out's page.
        auth_login_refused_record(username=form.data.get("username", ""), request=self.request, channel="web")
        return super().form_invalid(form)


def login_locked_out(request, original_response=None, credentials=None):
    """The sign-in page while this username is locked out at this address (AXES_LOCKOUT_CALLABLE): 429."""
    username = str(request.POST.get("username", ""))
    wait = login_lockout_seconds_left(username=username, ip_address=client_ip(request))
    context = {
        "form": AuthenticationForm(request, initial={"username": username}),
        "locked_out_minutes": max(1, math.ceil(wait / 60)),
        "next": request.POST.get("next", ""),
    }
    response = render(request, "registration/login.html", context, status=429)
    response["Retry-After"] = str(wait)
    return response


class LogoutView(auth_views.LogoutView):
    """POST-only logout that confirms it on the login page (workstations are shared on wards)."""

    def post(self, request, *args, **kwargs):
        was_signed_in = request.user.is_authenticated
        if was_signed_in:
            auth_logout_record(user=request.user, request=request)
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
