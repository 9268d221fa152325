"""``client.artifacts`` against the in-process app, and over transports that misbehave.

Round trips, listing and errors run on the real app. What the app never does (send a
corrupted stream or a hostile key, drop a connection mid-upload) and what it cannot show
(Starlette's test transport reads a request body whole, so memory use of an upload is
measured over a transport that consumes it chunk by chunk) run over small transports.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tracemalloc
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

import ketch
from ketch.sdk.resources.artifacts import (
    CHUNK_BYTES,
    ChecksumMismatch,
    write_verified,
)

ACCOUNT = "fraud-dev"
MIB = 1024 * 1024
Calls = list[tuple[int, int]]


@pytest.fixture
def account(client: ketch.Client) -> str:
    client.accounts.create(ACCOUNT, stage="dev", ou="teams/fraud", create_missing_ous=True)
    return ACCOUNT


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _tree(root: Path) -> dict[str, bytes]:
    """Every regular file below ``root`` by relative POSIX path."""
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in root.rglob("*")
        if p.is_file() and not p.is_symlink()
    }


def _recorder() -> tuple[Calls, Callable[[int, int], None]]:
    calls: Calls = []
    return calls, lambda done, total: calls.append((done, total))


# -- round trips -------------------------------------------------------------------


def test_a_file_round_trips_with_its_checksum(
    client: ketch.Client, account: str, tmp_path: Path
) -> None:
    data = os.urandom(3 * CHUNK_BYTES + 123)  # several chunks and a ragged end
    source = _write(tmp_path / "train.bin", data)

    [stored] = client.artifacts.upload(source, f"ketch://{account}/data/train.bin")

    assert (stored.uri, stored.key, stored.size, stored.sha256) == (
        "ketch://fraud-dev/data/train.bin",
        "data/train.bin",
        len(data),
        _sha(data),
    )
    described = client.artifacts.describe("ketch://fraud-dev/data/train.bin")
    assert (described.uri, described.size, described.sha256) == (
        stored.uri,
        stored.size,
        stored.sha256,
    )
    assert abs(described.modified - stored.modified).total_seconds() < 1

    [fetched] = client.artifacts.download(stored.uri, tmp_path / "copy.bin")
    assert (tmp_path / "copy.bin").read_bytes() == data
    assert (fetched.size, fetched.sha256) == (len(data), _sha(data))

    into = tmp_path / "into"
    into.mkdir()
    client.artifacts.download(stored.uri, into)
    client.artifacts.download(stored.uri, f"{tmp_path}/new-folder/")
    assert (into / "train.bin").read_bytes() == data
    assert (tmp_path / "new-folder" / "train.bin").read_bytes() == data
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_a_file_sent_to_a_prefix_keeps_its_name(
    client: ketch.Client, account: str, tmp_path: Path
) -> None:
    source = _write(tmp_path / "weights é.pt", b"w")

    [nested] = client.artifacts.upload(source, "ketch://fraud-dev/models/")
    [top] = client.artifacts.upload(str(source), "ketch://fraud-dev")

    assert (nested.key, top.key) == ("models/weights é.pt", "weights é.pt")


def test_a_directory_round_trips_with_its_layout(
    client: ketch.Client, account: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    source = tmp_path / "run"
    files = {
        "metrics.json": b'{"auc": 0.91}',
        "empty.txt": b"",
        "nested/deep/weights.bin": os.urandom(CHUNK_BYTES + 7),
        "with space/ünïcødé 100%.txt": "grüße".encode(),
    }
    for relative, data in files.items():
        _write(source / relative, data)
    outside = _write(tmp_path / "outside" / "secret.txt", b"not for upload")
    (source / "link.txt").symlink_to(source / "metrics.json")
    (source / "linked-folder").symlink_to(outside.parent, target_is_directory=True)
    caplog.set_level(logging.WARNING, logger="ketch")

    stored = client.artifacts.upload(source, "ketch://fraud-dev/runs/7/")

    assert [a.key for a in stored] == sorted(f"runs/7/{name}" for name in files)
    assert {a.key: a.sha256 for a in stored} == {
        f"runs/7/{name}": _sha(data) for name, data in files.items()
    }
    skipped = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(skipped) == 2
    assert all("symbolic link" in message for message in skipped)
    listed = list(client.artifacts.iter_all("ketch://fraud-dev/runs/", page_size=2))
    assert [a.key for a in listed] == [a.key for a in stored]

    copy = tmp_path / "copy"
    fetched = client.artifacts.download("ketch://fraud-dev/runs/7/", copy)

    assert _tree(copy) == files
    assert [a.key for a in fetched] == [a.key for a in stored]
    # the same objects without a trailing slash on the URI: the key prefix "runs/7/"
    # reaches them under "runs/", relative paths "7/..."
    client.artifacts.download("ketch://fraud-dev/runs/", tmp_path / "whole")
    assert _tree(tmp_path / "whole") == {f"7/{name}": data for name, data in files.items()}


def test_list_pages_and_plain_string_prefixes(
    client: ketch.Client, account: str, tmp_path: Path
) -> None:
    for key in ("data/a", "data/b", "database", "other"):
        source = _write(tmp_path / key.replace("/", "_"), key.encode())
        client.artifacts.upload(source, f"ketch://{account}/{key}")

    page = client.artifacts.list("ketch://fraud-dev/data", max_results=2)
    assert [a.key for a in page.items] == ["data/a", "data/b"]
    assert page.next_token is not None
    rest = client.artifacts.list("ketch://fraud-dev/data", next_token=page.next_token)
    assert ([a.key for a in rest.items], rest.next_token) == (["database"], None)
    assert [a.key for a in client.artifacts.iter_all("ketch://fraud-dev/data/")] == [
        "data/a",
        "data/b",
    ]
    assert len(list(client.artifacts.iter_all(f"ketch://{account}/"))) == 4


def test_progress_counts_every_byte_against_a_total_known_up_front(
    client: ketch.Client, account: str, tmp_path: Path
) -> None:
    sizes = {"a.bin": 2 * CHUNK_BYTES + 1, "b/c.bin": 5, "b/d.bin": CHUNK_BYTES}
    for name, size in sizes.items():
        _write(tmp_path / "up" / name, b"x" * size)
    total = sum(sizes.values())

    uploads, progress = _recorder()
    client.artifacts.upload(tmp_path / "up", "ketch://fraud-dev/p/", progress=progress)
    downloads, progress = _recorder()
    client.artifacts.download("ketch://fraud-dev/p/", tmp_path / "down", progress=progress)

    for calls in (uploads, downloads):
        assert {seen_total for _, seen_total in calls} == {total}
        done = [d for d, _ in calls]
        assert done == sorted(done) and done[-1] == total
        assert len(calls) >= 5  # chunk by chunk, not once per file


# -- errors ------------------------------------------------------------------------


def test_missing_objects_are_not_found_even_by_head(
    client: ketch.Client, account: str, tmp_path: Path
) -> None:
    with pytest.raises(ketch.NotFound, match="does not exist"):
        client.artifacts.describe("ketch://fraud-dev/nope.bin")
    with pytest.raises(ketch.NotFound):
        client.artifacts.download("ketch://fraud-dev/nope.bin", tmp_path / "nope.bin")
    assert not (tmp_path / "nope.bin").exists()
    client.artifacts.upload(_write(tmp_path / "x", b"x"), "ketch://fraud-dev/x")
    client.artifacts.delete("ketch://fraud-dev/x")
    with pytest.raises(ketch.NotFound):
        client.artifacts.delete("ketch://fraud-dev/x")
    assert client.artifacts.download("ketch://fraud-dev/empty/", tmp_path / "none") == []


def test_a_folder_named_without_its_slash_gets_a_hint(
    client: ketch.Client, account: str, tmp_path: Path
) -> None:
    client.artifacts.upload(_write(tmp_path / "w.bin", b"w"), "ketch://fraud-dev/models/w.bin")

    with pytest.raises(ketch.NotFound) as caught:
        client.artifacts.download("ketch://fraud-dev/models", tmp_path / "out")

    assert caught.value.message == (
        "artifact 'ketch://fraud-dev/models' does not exist, but objects exist under "
        "ketch://fraud-dev/models/: end the URI with '/' to download them all"
    )
    assert caught.value.status_code == 404  # type: ignore[attr-defined]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("call", ["describe", "delete"])
def test_describe_and_delete_take_an_object_not_a_prefix(client: ketch.Client, call: str) -> None:
    with pytest.raises(ketch.InvalidInput, match="is a prefix, not an object"):
        getattr(client.artifacts, call)("ketch://fraud-dev/data/")


def test_bad_uris_and_paths_fail_before_any_request(
    client: ketch.Client, account: str, tmp_path: Path
) -> None:
    with pytest.raises(ketch.InvalidInput, match=r"ketch://<account>/<key>"):
        client.artifacts.upload(_write(tmp_path / "f", b"f"), "s3://bucket/f")
    with pytest.raises(FileNotFoundError):
        client.artifacts.upload(tmp_path / "missing", "ketch://fraud-dev/m")
    folder = tmp_path / "folder"
    _write(folder / "ok.txt", b"ok")
    _write(folder / ".ketch-meta", b"reserved name")
    with pytest.raises(ketch.InvalidInput, match=r"cannot upload .*\.ketch-meta"):
        client.artifacts.upload(folder, "ketch://fraud-dev/f/")
    assert list(client.artifacts.iter_all("ketch://fraud-dev/")) == []
    _write(tmp_path / "file-not-folder", b"")
    client.artifacts.upload(folder / "ok.txt", "ketch://fraud-dev/f/ok.txt")
    with pytest.raises(ketch.InvalidInput, match="is not a directory"):
        client.artifacts.download("ketch://fraud-dev/f/", tmp_path / "file-not-folder")


def test_a_corrupted_download_leaves_nothing(tmp_path: Path) -> None:
    data = b"the real bytes"
    answer = httpx.Response(
        200,
        content=b"the fake bytes",
        headers={**_object_headers(len(data)), "X-Ketch-Sha256": _sha(data)},
    )
    client = _mock_client(lambda request: answer)
    _write(tmp_path / "model.bin", b"previous version")

    with pytest.raises(ChecksumMismatch, match="recorded " + _sha(data)):
        client.artifacts.download("ketch://fraud-dev/model.bin", tmp_path / "model.bin")

    assert os.listdir(tmp_path) == ["model.bin"]
    assert (tmp_path / "model.bin").read_bytes() == b"previous version"


@pytest.mark.parametrize(
    ("prefix", "key"),
    [("", "../escaped"), ("a/", "a/../../escaped"), ("", "/etc/escaped"), ("a/", "b/other")],
)
def test_a_hostile_key_from_the_server_is_refused_before_writing(
    tmp_path: Path, prefix: str, key: str
) -> None:
    gets: list[str] = []

    def server(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/artifacts"):
            items = [_listed("a/fine.txt"), _listed(key)]
            return httpx.Response(200, json={"items": items, "next_token": None})
        gets.append(request.url.path)
        return httpx.Response(200, content=b"x", headers=_object_headers(1))

    destination = tmp_path / "dest"
    with pytest.raises(ketch.InvalidInput, match="refusing to download") as caught:
        _mock_client(server).artifacts.download(f"ketch://fraud-dev/{prefix}", destination)

    assert "nothing was downloaded" in caught.value.message
    assert gets == []
    assert list(tmp_path.rglob("*")) == []


def test_keys_that_would_be_a_file_and_a_folder_are_refused(tmp_path: Path) -> None:
    listing = {"items": [_listed("a/model"), _listed("a/model/part-1")], "next_token": None}
    client = _mock_client(lambda request: httpx.Response(200, json=listing))

    with pytest.raises(ketch.InvalidInput, match="a file and a folder"):
        client.artifacts.download("ketch://fraud-dev/a/", tmp_path / "dest")
    assert list(tmp_path.iterdir()) == []


# -- the writer helper ---------------------------------------------------


def test_write_verified_keeps_the_old_file_on_a_wrong_digest(tmp_path: Path) -> None:
    target = _write(tmp_path / "model.bin", b"old")
    chunks = [b"new ", b"content"]

    with pytest.raises(ChecksumMismatch, match="hash to"):
        write_verified(chunks, target, sha256=_sha(b"something else"))
    with pytest.raises(ChecksumMismatch, match="received 11 bytes but the server announced 12"):
        write_verified(chunks, target, sha256=_sha(b"new content"), size=12)

    assert os.listdir(tmp_path) == ["model.bin"]
    assert target.read_bytes() == b"old"
    seen: list[int] = []
    write_verified(chunks, target, sha256=_sha(b"new content").upper(), on_chunk=seen.append)
    assert (target.read_bytes(), seen) == (b"new content", [4, 7])


def test_write_verified_leaves_nothing_when_the_stream_breaks(tmp_path: Path) -> None:
    def broken() -> Any:
        yield b"first part"
        raise httpx.ReadError("connection reset")

    with pytest.raises(httpx.ReadError):
        write_verified(broken(), tmp_path / "x.bin", sha256=None)
    assert os.listdir(tmp_path) == []


def test_an_interrupted_download_is_backend_unavailable_and_leaves_nothing(
    tmp_path: Path,
) -> None:
    class Broken(httpx.SyncByteStream):
        def __iter__(self) -> Any:
            yield b"part"
            raise httpx.ReadError("connection reset")

    answer = httpx.Response(200, stream=Broken(), headers=_object_headers(10))
    client = _mock_client(lambda request: answer)

    with pytest.raises(ketch.BackendUnavailable, match="interrupted"):
        client.artifacts.download("ketch://fraud-dev/x.bin", tmp_path / "x.bin")
    assert os.listdir(tmp_path) == []


# -- streaming uploads -------------------------------------------------------------


class StreamingServer(httpx.BaseTransport):
    """Consumes each upload chunk by chunk, as a real server does, keeping only a hash.

    ``fail_first`` drops the connection after that many bytes of the first attempt.
    """

    def __init__(self, *, fail_first: int | None = None) -> None:
        self.fail_first = fail_first
        self.attempts: list[tuple[int, str]] = []
        self.largest_chunk = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        assert isinstance(request.stream, httpx.SyncByteStream)
        digest = hashlib.sha256()
        size = 0
        for chunk in request.stream:
            digest.update(chunk)
            size += len(chunk)
            self.largest_chunk = max(self.largest_chunk, len(chunk))
            if self.fail_first is not None and not self.attempts and size >= self.fail_first:
                self.attempts.append((size, "dropped"))
                raise httpx.WriteError("connection reset by peer")
        self.attempts.append((size, digest.hexdigest()))
        assert request.headers["x-ketch-sha256"] == digest.hexdigest()
        assert request.headers["content-length"] == str(size)
        key = request.url.path.split("/artifacts/", 1)[1]
        body = {
            "uri": f"ketch://fraud-dev/{key}",
            "account": "fraud-dev",
            "key": key,
            "size": size,
            "sha256": digest.hexdigest(),
            "modified": datetime.now(UTC).isoformat(),
        }
        return httpx.Response(200, json=body)


def _big_file(path: Path, size: int) -> str:
    """Write ``size`` bytes a chunk at a time; returns their SHA-256."""
    digest = hashlib.sha256()
    block = os.urandom(MIB)
    with path.open("wb") as out:
        for start in range(0, size, MIB):
            piece = block[: min(MIB, size - start)]
            out.write(piece)
            digest.update(piece)
    return digest.hexdigest()


def test_a_30_mib_upload_streams_in_bounded_memory(tmp_path: Path) -> None:
    size = 30 * MIB
    digest = _big_file(tmp_path / "big.bin", size)
    server = StreamingServer()
    client = _mock_client(transport=server)

    tracemalloc.start()
    try:
        [stored] = client.artifacts.upload(tmp_path / "big.bin", "ketch://fraud-dev/big.bin")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert (stored.size, stored.sha256) == (size, digest)
    assert server.attempts == [(size, digest)]
    assert server.largest_chunk <= CHUNK_BYTES
    assert peak < 4 * CHUNK_BYTES, f"peak {peak / MIB:.1f} MiB for a 30 MiB upload"


def test_a_retried_upload_reads_the_file_again_from_its_start(tmp_path: Path) -> None:
    data = os.urandom(3 * CHUNK_BYTES)
    source = _write(tmp_path / "model.bin", data)
    server = StreamingServer(fail_first=CHUNK_BYTES)
    calls, progress = _recorder()

    [stored] = _mock_client(transport=server).artifacts.upload(
        source, "ketch://fraud-dev/model.bin", progress=progress
    )

    assert server.attempts == [(CHUNK_BYTES, "dropped"), (len(data), _sha(data))]
    assert stored.sha256 == _sha(data)
    done = [d for d, _ in calls]
    assert done[0] == CHUNK_BYTES and 0 in done  # the retry took its progress back
    assert calls[-1] == (len(data), len(data))


def test_an_upload_is_not_retried_for_ever(tmp_path: Path) -> None:
    attempts: list[int] = []

    def refuse(request: httpx.Request) -> httpx.Response:
        attempts.append(len(request.read()))
        return httpx.Response(503, json={"error": {"code": "ServiceUnavailable", "message": "x"}})

    source = _write(tmp_path / "f", b"abc")
    with pytest.raises(ketch.BackendUnavailable):
        _mock_client(refuse).artifacts.upload(source, "ketch://fraud-dev/f")
    assert attempts == [3, 3, 3, 3]  # the first try and three retries, each whole


# -- helpers -----------------------------------------------------------------------


def _mock_client(
    handler: Callable[[httpx.Request], httpx.Response] | None = None,
    *,
    transport: httpx.BaseTransport | None = None,
) -> ketch.Client:
    return ketch.Client(
        url="http://ketch.test",
        token="t0k",
        transport=transport or httpx.MockTransport(handler),  # type: ignore[arg-type]
        retry_delays=(0, 0, 0),
    )


def _object_headers(size: int) -> dict[str, str]:
    return {"Content-Length": str(size), "Last-Modified": "Mon, 23 Nov 2026 08:00:00 GMT"}


def _listed(key: str) -> dict[str, Any]:
    """A listing entry, as the server would send it."""
    return {
        "uri": f"ketch://fraud-dev/{key}",
        "account": "fraud-dev",
        "key": key,
        "size": 1,
        "sha256": None,
        "modified": "2026-11-23T08:00:00Z",
    }


def test_an_upload_waits_long_for_the_answer_after_its_last_byte(tmp_path: Path) -> None:
    """The server may still be storing a large object (spooled to S3) when the body ends:
    the upload's read timeout is long, other calls keep the client's."""
    seen: dict[str, dict[str, float | None]] = {}

    def answer(request: httpx.Request) -> httpx.Response:
        seen[request.method] = request.extensions["timeout"]
        request.read()
        body = {
            "uri": "ketch://fraud-dev/a.bin",
            "account": "fraud-dev",
            "key": "a.bin",
            "size": 1,
            "sha256": None,
            "modified": "2026-11-23T00:00:00Z",
        }
        return httpx.Response(200, json=body)

    source = tmp_path / "a.bin"
    source.write_bytes(b"x")
    with ketch.Client(
        url="http://ketch.test", token="t", transport=httpx.MockTransport(answer)
    ) as client:
        client.artifacts.upload(source, "ketch://fraud-dev/a.bin")
        client.request("GET", "/api/v1/organization")
    assert seen["PUT"]["read"] == 3600.0
    assert seen["GET"]["read"] == 30.0
