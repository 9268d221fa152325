"""Ketch: a self-hosted, modular machine-learning platform for many teams.

The top-level package is the SDK's public surface only, loaded lazily so that
``import ketch`` stays fast and never pulls in server code::

    import ketch
    client = ketch.Client()
    ketch.artifacts.upload("model/", "ketch://fraud-dev/models/v3/")

Inside a job, ``ketch.log_metric("loss", 0.42, step=3)`` records a metric point.
"""

from __future__ import annotations

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ketch.core.errors import (
        BackendUnavailable,
        Conflict,
        Forbidden,
        InternalError,
        InvalidInput,
        KetchError,
        NotFound,
        PayloadTooLarge,
        QuotaExceeded,
        Throttled,
        Unauthenticated,
    )
    from ketch.sdk import artifacts, jobs
    from ketch.sdk.client import Client
    from ketch.sdk.metrics import log_metric

try:
    __version__ = version("ketch")
except PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0.0.0"

_ERRORS = (
    "BackendUnavailable",
    "Conflict",
    "Forbidden",
    "InternalError",
    "InvalidInput",
    "KetchError",
    "NotFound",
    "PayloadTooLarge",
    "QuotaExceeded",
    "Throttled",
    "Unauthenticated",
)
_LAZY = {
    "Client": "ketch.sdk.client",
    "log_metric": "ketch.sdk.metrics",
    **{name: "ketch.core.errors" for name in _ERRORS},
}
_LAZY_MODULES = {"artifacts": "ketch.sdk.artifacts", "jobs": "ketch.sdk.jobs"}
"""Names that are whole modules (``ketch.artifacts.upload(...)``), not one of their attributes."""

__all__ = [
    "BackendUnavailable",
    "Client",
    "Conflict",
    "Forbidden",
    "InternalError",
    "InvalidInput",
    "KetchError",
    "NotFound",
    "PayloadTooLarge",
    "QuotaExceeded",
    "Throttled",
    "Unauthenticated",
    "__version__",
    "artifacts",
    "jobs",
    "log_metric",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY_MODULES:
        value: Any = import_module(_LAZY_MODULES[name])
    elif name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
    else:
        raise AttributeError(f"module 'ketch' has no attribute {name!r}")
    globals()[name] = value
    return value
