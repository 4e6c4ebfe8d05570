"""Telemetry: GPS fixes from the vans, device tokens, geofenced sites and their events."""

__all__: list[str] = []
