"""One router module per service."""

__all__: list[str] = []
