"""Layer 3: HTTP. The only package that imports FastAPI; a thin adapter over services."""

from ketch.api.app import create_app

__all__ = ["create_app"]
