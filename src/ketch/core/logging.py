"""Logging set-up in one place: JSON lines for servers, a redaction filter always.

Records carry ``request_id`` and ``principal`` from context variables that the API
sets per request. The redaction filter masks bearer tokens, ketch tokens and
``password=...``-like fields before anything is written.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from contextvars import ContextVar
from datetime import UTC, datetime

request_id_var: ContextVar[str | None] = ContextVar("ketch_request_id", default=None)
principal_var: ContextVar[str | None] = ContextVar("ketch_principal", default=None)

_SENSITIVE_FIELD = r"(?i)((?:password|secret|token)[\"']?\s*[:=]\s*"
_SECRET_PATTERNS = (
    re.compile(r"(ketch_[A-Za-z0-9]{8}_)[A-Za-z0-9_-]+"),
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+"),
    # A quoted value is masked up to its closing quote, spaces and escaped quotes included.
    re.compile(_SENSITIVE_FIELD + r'")(?:[^"\\]|\\.)*(")'),
    re.compile(_SENSITIVE_FIELD + r"')(?:[^'\\]|\\.)*(')"),
    re.compile(_SENSITIVE_FIELD + r"[\"']?)[^\s\"',}]+"),
    re.compile(r"(://[^:/@\s]+:)[^@\s]+(@)"),
)


def redact(text: str) -> str:
    """Mask anything that looks like a credential in ``text``."""
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(
            lambda m: m.group(1) + "***" + (m.group(2) if m.lastindex == 2 else ""), text
        )
    return text


class RedactingFilter(logging.Filter):
    """Rewrites each record's message with :func:`redact` and adds context fields."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = None
        # Formatters reuse a cached ``exc_text``: fill it redacted so that no handler
        # writes an unmasked traceback.
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        record.request_id = request_id_var.get()
        record.principal = principal_var.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for field in ("request_id", "principal"):
            value = getattr(record, field, None)
            if value:
                payload[field] = value
        if record.exc_info:
            payload["exception"] = redact(self.formatException(record.exc_info))
        return json.dumps(payload, default=str)


def configure_logging(level: str = "INFO", *, json_lines: bool = True) -> None:
    """Install one stderr handler on the ``ketch`` logger (idempotent)."""
    logger = logging.getLogger("ketch")
    logger.setLevel(level.upper())
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RedactingFilter())
    handler.setFormatter(
        JsonFormatter() if json_lines else logging.Formatter("%(levelname)s %(name)s %(message)s")
    )
    logger.addHandler(handler)
    logger.propagate = False
