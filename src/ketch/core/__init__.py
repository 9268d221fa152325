"""Layer 0: ids, resource names, errors, settings, clock and logging.

Imports only the standard library and pydantic; nothing else from ketch.
"""

__all__: list[str] = []
