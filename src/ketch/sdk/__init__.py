"""The Python SDK: a synchronous HTTP client for the ketch API.

Imports only ``ketch.core``, ``ketch.schemas`` and httpx, so it ships without server code.
"""

from ketch.sdk.client import Client

__all__ = ["Client"]
