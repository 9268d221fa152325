"""What only the S3 backend has: credentials, metadata written by others, its staging
folder, multipart uploads. The shared contract is in ``test_conformance.py``; these run
against the same loopback moto server (``support.s3_server``).
"""

from __future__ import annotations

import hashlib
import stat
import threading
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import obstore
import pytest
from obstore.store import S3Store

from ketch.artifact_store.backends import CHUNK_BYTES, ChecksumMismatch, ObjectMissing
from ketch.artifact_store.backends.s3 import (
    STAGING_PREFIX,
    UPLOAD_PART_BYTES,
    S3Backend,
    S3Location,
)
from ketch.core.errors import BackendUnavailable, InvalidInput
from support.processes import LOOPBACK, free_port
from support.s3_server import MotoS3Server

SECRET = f"secret-{uuid.uuid4().hex}"
KEY_ID = f"AKID{uuid.uuid4().hex[:16].upper()}"


@pytest.fixture
def location(s3_server: MotoS3Server) -> S3Location:
    """An account's location on a fresh bucket of the loopback server."""
    return S3Location(
        s3_server.create_bucket(),
        prefix=f"accounts/{uuid.uuid4().hex[:8]}",
        endpoint=s3_server.endpoint,
        region=s3_server.region,
        access_key_id=s3_server.access_key_id,
        secret_access_key=s3_server.secret_access_key,
        allow_http=True,
    )


@pytest.fixture
def staging(tmp_path: Path) -> Path:
    return tmp_path / "staging"


@pytest.fixture
def backend(location: S3Location, staging: Path) -> S3Backend:
    return S3Backend(location, staging_dir=staging)


@pytest.fixture
def raw_store(location: S3Location) -> S3Store:
    """The location's bucket through obstore directly, as another tool would write it."""
    return S3Store(
        location.bucket,
        endpoint=location.endpoint,
        region=location.region,
        access_key_id=location.access_key_id,
        secret_access_key=location.secret_access_key,
        client_options={"allow_http": True},
    )


# -- credentials --------------------------------------------------------------------------

OPERATIONS: dict[str, Callable[[S3Backend], Any]] = {
    "put": lambda backend: backend.put("k.txt", [b"content"]),
    "open": lambda backend: backend.open("k.txt"),
    "head": lambda backend: backend.head("k.txt"),
    "list_objects": lambda backend: backend.list_objects(""),
    "delete": lambda backend: backend.delete("k.txt"),
}


@pytest.mark.parametrize("operation", OPERATIONS)
def test_an_unreachable_store_is_unavailable_and_no_credential_is_shown(
    operation: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    endpoint = f"http://{LOOPBACK}:{free_port()}"  # nothing listens there
    location = S3Location(
        "closed-bucket",
        prefix="acct",
        endpoint=endpoint,
        access_key_id=KEY_ID,
        secret_access_key=SECRET,
        allow_http=True,
    )
    backend = S3Backend(location, staging_dir=tmp_path / "staging")

    with pytest.raises(BackendUnavailable) as caught:
        OPERATIONS[operation](backend)

    message = str(caught.value)
    assert "closed-bucket" in message and endpoint in message
    shown = [message, repr(caught.value), repr(location), str(location), repr(backend), caplog.text]
    for text in shown:
        assert SECRET not in text and KEY_ID not in text
    assert "closed-bucket" in caplog.text  # the failure is logged, masked
    assert list((tmp_path / "staging").glob("*")) == []


def test_location_rejects_half_credentials_and_odd_names() -> None:
    with pytest.raises(InvalidInput, match="both"):
        S3Location("bucket", access_key_id=KEY_ID)
    with pytest.raises(InvalidInput, match="'/'"):
        S3Location("bucket/sub")
    with pytest.raises(InvalidInput, match="'/'"):
        S3Location("bucket", prefix="/acct")


class _AnsweringHandler(BaseHTTPRequestHandler):
    """Answers every request with ``status`` and ``body``; records its headers (names
    lower-cased)."""

    recorded: list[dict[str, str]]
    status: int
    body: bytes

    def do_HEAD(self) -> None:
        self.recorded.append({name.lower(): value for name, value in self.headers.items()})
        self.send_response(self.status)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(self.body)

    do_GET = do_PUT = do_DELETE = do_POST = do_HEAD

    def log_message(self, format: str, *args: Any) -> None:  # silence the access log
        pass


class RecordingServer:
    """A loopback HTTP server in a thread that answers every request ``status`` with
    ``body`` and records each request's headers."""

    def __init__(self, status: int = 404, body: bytes = b"") -> None:
        self.status = status
        self.body = body

    def __enter__(self) -> tuple[str, list[dict[str, str]]]:
        recorded: list[dict[str, str]] = []
        answers = {"recorded": recorded, "status": self.status, "body": self.body}
        handler = type("Handler", (_AnsweringHandler,), answers)
        self._server = ThreadingHTTPServer((LOOPBACK, 0), handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return f"http://{LOOPBACK}:{self._server.server_port}", recorded

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def test_credentials_a_store_echoes_back_are_masked_in_the_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """S3 names the access key id in a signature error; a misconfigured proxy might echo
    anything. Whatever the store's answer says, the log shows neither credential."""
    body = (
        "<?xml version='1.0'?><Error><Code>SignatureDoesNotMatch</Code>"
        f"<AWSAccessKeyId>{KEY_ID}</AWSAccessKeyId><StringToSign>{SECRET}</StringToSign>"
        "</Error>"
    ).encode()
    with RecordingServer(403, body) as (endpoint, _):
        location = S3Location(
            "bucket",
            endpoint=endpoint,
            access_key_id=KEY_ID,
            secret_access_key=SECRET,
            allow_http=True,
        )
        with pytest.raises(BackendUnavailable) as caught:
            S3Backend(location, staging_dir=tmp_path).list_objects("")

    assert "SignatureDoesNotMatch" in caplog.text  # the store's answer is logged ...
    assert "***" in caplog.text  # ... with the credentials it held masked
    for text in (caplog.text, str(caught.value), repr(caught.value)):
        assert KEY_ID not in text and SECRET not in text


def test_an_ambient_session_token_is_not_sent_with_explicit_keys(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """obstore adds ``AWS_SESSION_TOKEN`` from the environment to explicitly given keys;
    an instance role's token would then spoil every request signed with an account's keys.
    """
    monkeypatch.setenv("AWS_SESSION_TOKEN", "ambient-instance-role-token")
    with RecordingServer() as (endpoint, requests):
        location = S3Location(
            "bucket",
            endpoint=endpoint,
            access_key_id=KEY_ID,
            secret_access_key=SECRET,
            allow_http=True,
        )
        with pytest.raises(ObjectMissing):
            S3Backend(location, staging_dir=tmp_path).head("k.txt")

    assert requests, "the backend sent no request"
    for headers in requests:
        assert "x-amz-security-token" not in headers
        assert f"Credential={KEY_ID}/" in headers["authorization"]


# -- objects written by other tools -------------------------------------------------------


def test_an_object_without_checksum_metadata_reports_none(
    backend: S3Backend, raw_store: S3Store, location: S3Location
) -> None:
    content = b"written by another tool"
    obstore.put(raw_store, f"{location.prefix}/foreign.bin", content)

    info, chunks = backend.open("foreign.bin")

    assert b"".join(chunks) == content
    assert (info.size, info.sha256) == (len(content), None)
    assert backend.head("foreign.bin").sha256 is None
    assert [obj.key for obj in backend.list_objects("")] == ["foreign.bin"]


def test_checksum_metadata_that_is_not_a_hex_sha256_is_ignored(
    backend: S3Backend, raw_store: S3Store, location: S3Location
) -> None:
    obstore.put(
        raw_store,
        f"{location.prefix}/other.bin",
        b"data",
        attributes={"sha256": "n4bQgYhMfWWaL+qgxVrQFaO/TxsrC4Is0V1sFbDwCgg="},  # base64
    )

    assert backend.head("other.bin").sha256 is None


# -- staging and uploads ------------------------------------------------------------------


def test_staging_files_are_private_and_removed_after_every_put(
    backend: S3Backend, staging: Path
) -> None:
    seen: list[tuple[int, list[tuple[str, int]]]] = []

    def observed_source() -> Iterator[bytes]:
        yield b"first chunk"
        staged = [(p.name, stat.S_IMODE(p.stat().st_mode)) for p in staging.iterdir()]
        seen.append((stat.S_IMODE(staging.stat().st_mode), staged))
        yield b"second chunk"

    backend.put("one.txt", observed_source())
    backend.put("two.txt", observed_source())
    with pytest.raises(ChecksumMismatch):
        backend.put("three.txt", [b"x"], expected_sha256="0" * 64)

    for folder_mode, staged in seen:
        assert folder_mode == 0o700
        assert len(staged) == 1
        name, file_mode = staged[0]
        assert name.startswith(STAGING_PREFIX) and file_mode == 0o600
    assert seen[0][1][0][0] != seen[1][1][0][0]  # a unique name per write
    assert list(staging.iterdir()) == []


def test_a_multipart_upload_keeps_the_checksum(
    backend: S3Backend, raw_store: S3Store, location: S3Location
) -> None:
    chunk_count = UPLOAD_PART_BYTES // CHUNK_BYTES + 1
    chunks = [bytes([n]) * CHUNK_BYTES for n in range(chunk_count)]
    expected = hashlib.sha256(b"".join(chunks)).hexdigest()

    stored = backend.put("multi.bin", chunks)

    e_tag = obstore.head(raw_store, f"{location.prefix}/multi.bin")["e_tag"] or ""
    assert e_tag.strip('"').endswith("-2"), f"not a two-part upload: ETag {e_tag}"
    assert stored.sha256 == backend.head("multi.bin").sha256 == expected


def test_objects_live_under_the_account_prefix(
    backend: S3Backend, raw_store: S3Store, location: S3Location
) -> None:
    backend.put("dir/file.txt", [b"content"])

    paths = [meta["path"] for meta in obstore.list(raw_store).collect()]

    assert paths == [f"{location.prefix}/dir/file.txt"]


def test_a_location_without_prefix_uses_the_whole_bucket(
    s3_server: MotoS3Server, raw_store: S3Store, location: S3Location, staging: Path
) -> None:
    whole_bucket = S3Backend(
        S3Location(
            location.bucket,
            endpoint=location.endpoint,
            access_key_id=location.access_key_id,
            secret_access_key=location.secret_access_key,
            allow_http=True,
        ),
        staging_dir=staging,
    )

    whole_bucket.put("top.txt", [b"top"])

    assert [meta["path"] for meta in obstore.list(raw_store).collect()] == ["top.txt"]
    assert [obj.key for obj in whole_bucket.list_objects("")] == ["top.txt"]
