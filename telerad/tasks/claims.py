"""Tasks: claims (filled by the issue that builds it)."""

__all__: list[str] = []
