"""Fleet register API routes."""

urlpatterns: list = []
