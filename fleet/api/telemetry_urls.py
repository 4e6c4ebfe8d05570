"""Fleet telemetry API routes."""

urlpatterns: list = []
