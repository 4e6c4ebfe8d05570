from django.urls import path

from core import views
from core.web import audit, dashboards
from core.workspaces import WORKSPACES

urlpatterns = [
    path("", views.home, name="home"),
    path("login/", views.LoginView.as_view(), name="login"),
    path("logout/", views.LogoutView.as_view(), name="logout"),
    path("workspace/quality/dashboard/", dashboards.dashboard, name="quality-dashboard"),
    path("workspace/quality/audit/", audit.audit_review, name="quality-audit"),
]

# Every workspace has its route from day one so links and permission checks are real; the issue
# that builds a workspace replaces its placeholder here with the real view.
urlpatterns += [
    path(f"workspace/{ws.slug}/", views.workspace_placeholder(ws), name=ws.url_name) for ws in WORKSPACES
]
