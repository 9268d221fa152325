"""Layer 4: the composition root. Builds the context from settings and runs processes."""

__all__: list[str] = []
