"""Logging: secrets are masked before anything is written; servers log JSON lines."""

from __future__ import annotations

import io
import json
import logging
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest

from ketch.core.logging import (
    JsonFormatter,
    RedactingFilter,
    configure_logging,
    principal_var,
    redact,
    request_id_var,
)

TOKEN = "ketch_AbCd1234_s3cr3t-Value_xyz"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"issued {TOKEN} to alice", "issued ketch_AbCd1234_*** to alice"),
        ("Authorization: Bearer abc.DEF-123~+/=", "Authorization: Bearer ***"),
        ("authorization: bearer abc", "authorization: bearer ***"),
        ("password=hunter2 next", "password=*** next"),
        ("PASSWORD: hunter2", "PASSWORD: ***"),
        ("client_secret = s3cr3t,other", "client_secret = ***,other"),
        ("token=abc&x=1", "token=***"),
        ('{"password": "hunter2", "user": "bob"}', '{"password": "***", "user": "bob"}'),
        ("{'secret': 'hunter2'}", "{'secret': '***'}"),
        ('{"password": "correct horse battery"}', '{"password": "***"}'),
        ('{"password": "a\\"b c", "n": 1}', '{"password": "***", "n": 1}'),
        ("postgresql://ketch:pa55@db:5432/ketch", "postgresql://ketch:***@db:5432/ketch"),
    ],
)
def test_redact_masks_secrets(text: str, expected: str) -> None:
    assert redact(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "listed 3 accounts",
        "token_ttl_days=30",
        "created user bob",
        "https://example.com/path",
        "ketch_short_x",
    ],
)
def test_redact_leaves_ordinary_text_alone(text: str) -> None:
    assert redact(text) == text


def test_redact_is_idempotent() -> None:
    once = redact(f'password="a b" {TOKEN} Bearer xyz')
    assert redact(once) == once


def _record(msg: str, *args: object, exc: bool = False) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise RuntimeError("connect failed: password=hunter2")
        except RuntimeError:
            exc_info = sys.exc_info()
    return logging.LogRecord("ketch.test", logging.WARNING, __file__, 1, msg, args, exc_info)


def test_filter_masks_arguments_and_adds_context() -> None:
    record = _record("signed in with %s", TOKEN)
    rid, who = request_id_var.set("req-1"), principal_var.set("user/alice")
    try:
        assert RedactingFilter().filter(record) is True
    finally:
        request_id_var.reset(rid)
        principal_var.reset(who)
    assert record.getMessage() == "signed in with ketch_AbCd1234_***"
    assert record.args is None
    assert record.__dict__["request_id"] == "req-1"
    assert record.__dict__["principal"] == "user/alice"


def _handler(formatter: logging.Formatter) -> tuple[logging.Handler, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter())
    handler.setFormatter(formatter)
    return handler, stream


def test_plain_text_tracebacks_are_masked_too() -> None:
    handler, stream = _handler(logging.Formatter("%(levelname)s %(message)s"))
    handler.handle(_record("failed for %s", "Bearer abc123", exc=True))
    output = stream.getvalue()
    assert "failed for Bearer ***" in output
    assert "RuntimeError: connect failed: password=***" in output
    assert "hunter2" not in output and "abc123" not in output


def test_json_formatter_writes_one_object_per_line() -> None:
    handler, stream = _handler(JsonFormatter())
    before = datetime.now().astimezone()
    rid = request_id_var.set("req-abc")
    try:
        handler.handle(_record("multi\nline %s", "password=hunter2", exc=True))
    finally:
        request_id_var.reset(rid)
    handler.handle(_record("second"))
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert first["level"] == "WARNING"
    assert first["logger"] == "ketch.test"
    assert first["message"] == "multi\nline password=***"
    assert first["request_id"] == "req-abc"
    assert "principal" not in first
    assert "password=***" in first["exception"] and "hunter2" not in first["exception"]
    stamp = datetime.fromisoformat(first["time"])
    assert stamp.utcoffset() == timedelta(0)
    assert abs(stamp - before) < timedelta(minutes=1)
    assert set(second) == {"time", "level", "logger", "message"}


@pytest.fixture
def ketch_logger() -> Iterator[logging.Logger]:
    """The ``ketch`` logger, restored after the test."""
    logger = logging.getLogger("ketch")
    saved = (list(logger.handlers), logger.level, logger.propagate)
    try:
        yield logger
    finally:
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
        for handler in saved[0]:
            logger.addHandler(handler)
        logger.setLevel(saved[1])
        logger.propagate = saved[2]


def test_configure_logging_installs_one_redacting_json_handler(
    ketch_logger: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("debug")
    configure_logging("info")
    assert len(ketch_logger.handlers) == 1
    assert ketch_logger.level == logging.INFO
    assert ketch_logger.propagate is False
    logging.getLogger("ketch.api").debug("hidden")
    logging.getLogger("ketch.api").info("login token=%s", "abc")
    lines = capsys.readouterr().err.splitlines()
    assert [json.loads(line)["message"] for line in lines] == ["login token=***"]


def test_configure_logging_plain_lines(
    ketch_logger: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("WARNING", json_lines=False)
    logging.getLogger("ketch.x").warning("url postgresql://u:pw@h/d")
    assert capsys.readouterr().err == "WARNING ketch.x url postgresql://u:***@h/d\n"
