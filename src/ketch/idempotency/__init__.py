"""The idempotency service: client tokens for safe retries of creates."""

from ketch.idempotency.service import fingerprint, recall, remember

__all__ = ["fingerprint", "recall", "remember"]
