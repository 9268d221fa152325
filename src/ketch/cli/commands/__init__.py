"""One module per command group."""

__all__: list[str] = []
