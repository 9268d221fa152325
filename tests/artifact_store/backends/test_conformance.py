"""The contract of :class:`ObjectBackend`, run against every backend.

``local`` is :class:`LocalBackend` in ``tmp_path``; ``s3`` is :class:`S3Backend` on a fresh
bucket of a real S3 server on loopback (moto, see ``support.s3_server``), spooling to
``tmp_path``. Each test gets ``accounts``: a factory of backends for accounts that share
one store (one folder, one bucket), so isolation between sibling accounts is checked as
well. Everything a backend writes locally is under ``tmp_path``, so a snapshot of that
tree shows what a failed write left behind.
"""

from __future__ import annotations

import hashlib
import os
import tracemalloc
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ketch.artifact_store.backends import (
    CHUNK_BYTES,
    ChecksumMismatch,
    ObjectBackend,
    ObjectMissing,
    StoredObject,
)
from ketch.artifact_store.backends.local import LocalBackend
from ketch.artifact_store.backends.s3 import S3Backend, S3Location
from ketch.core.artifact_uri import validate_key
from support.s3_server import MotoS3Server

Accounts = Callable[[str], ObjectBackend]

LARGE_CHUNKS = 20
"""The large object: 20 chunks of ``CHUNK_BYTES`` (20 MiB; a multipart upload on S3)."""
MEMORY_CEILING = 6 * CHUNK_BYTES
"""Python memory a 20 MiB round trip may peak at: a few chunks, never the whole object."""


@pytest.fixture(params=["local", "s3"])
def accounts(request: pytest.FixtureRequest, tmp_path: Path) -> Accounts:
    """``accounts(name)``: the backend of account ``name``; all share one store."""
    if request.param == "local":
        return lambda account: LocalBackend(tmp_path / "root" / account)
    server: MotoS3Server = request.getfixturevalue("s3_server")
    bucket = server.create_bucket()
    run = uuid.uuid4().hex[:8]

    def s3_account(account: str) -> ObjectBackend:
        location = S3Location(
            bucket,
            prefix=f"{run}/{account}",
            endpoint=server.endpoint,
            region=server.region,
            access_key_id=server.access_key_id,
            secret_access_key=server.secret_access_key,
            allow_http=True,
        )
        return S3Backend(location, staging_dir=tmp_path / "staging")

    return s3_account


@pytest.fixture
def backend(accounts: Accounts) -> ObjectBackend:
    """The backend of account ``acct-a`` (overrides the database ``backend`` of conftest)."""
    return accounts("acct-a")


# -- helpers ------------------------------------------------------------------------------


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read(backend: ObjectBackend, key: str) -> tuple[StoredObject, bytes]:
    """Open ``key`` and read it all, checking that no chunk exceeds ``CHUNK_BYTES``."""
    info, chunks = backend.open(key)
    data = bytearray()
    for chunk in chunks:
        assert len(chunk) <= CHUNK_BYTES
        data += chunk
    return info, bytes(data)


def files_under(folder: Path) -> dict[Path, tuple[int, int]]:
    """Every file below ``folder`` with its size and modification time."""
    return {
        path: (path.stat().st_size, path.stat().st_mtime_ns)
        for path in folder.rglob("*")
        if path.is_file()
    }


def keys_of(objects: list[StoredObject]) -> list[str]:
    return [obj.key for obj in objects]


class PatternSource:
    """``count`` distinct chunks of ``CHUNK_BYTES``, made on the fly and hashed as handed
    out: the object never exists in memory as a whole."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.digest = hashlib.sha256()

    def __iter__(self) -> Iterator[bytes]:
        for index in range(self.count):
            chunk = hashlib.sha256(index.to_bytes(4, "big")).digest() * (CHUNK_BYTES // 32)
            self.digest.update(chunk)
            yield chunk


class SourceFailed(Exception):
    """Raised by a chunk source half-way through an upload."""


def failing_source(chunks_before_failure: int) -> Iterator[bytes]:
    for _ in range(chunks_before_failure):
        yield b"n" * CHUNK_BYTES
    raise SourceFailed("the client went away")


def assert_recent_utc(moment: datetime) -> None:
    assert moment.utcoffset() == timedelta(0)
    assert abs(datetime.now(UTC) - moment) < timedelta(minutes=5)


# -- writing and reading ------------------------------------------------------------------


def test_put_then_open_returns_the_same_bytes_and_checksum(backend: ObjectBackend) -> None:
    content = b"hello, artifact store\n" * 100

    stored = backend.put("reports/run-1.txt", [content[:1000], content[1000:]])

    assert (stored.key, stored.size, stored.sha256) == (
        "reports/run-1.txt",
        len(content),
        sha256(content),
    )
    assert_recent_utc(stored.modified)
    info, data = read(backend, "reports/run-1.txt")
    assert data == content
    assert info == stored


def test_an_empty_object_is_stored(backend: ObjectBackend) -> None:
    stored = backend.put("empty.bin", [])

    assert (stored.size, stored.sha256) == (0, sha256(b""))
    info, data = read(backend, "empty.bin")
    assert (data, info.size, info.sha256) == (b"", 0, sha256(b""))
    assert keys_of(backend.list_objects("")) == ["empty.bin"]


def test_a_large_object_streams_through_in_chunks(backend: ObjectBackend) -> None:
    source = PatternSource(LARGE_CHUNKS)
    size = LARGE_CHUNKS * CHUNK_BYTES
    tracemalloc.start()
    try:
        stored = backend.put("models/large.bin", source)
        info, chunks = backend.open("models/large.bin")
        streamed = hashlib.sha256()
        read_size = 0
        for chunk in chunks:
            assert len(chunk) <= CHUNK_BYTES
            streamed.update(chunk)
            read_size += len(chunk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert (stored.size, stored.sha256) == (size, source.digest.hexdigest())
    assert (info.size, info.sha256) == (size, source.digest.hexdigest())
    assert (read_size, streamed.hexdigest()) == (size, source.digest.hexdigest())
    assert backend.head("models/large.bin").sha256 == source.digest.hexdigest()
    assert peak < MEMORY_CEILING, f"peaked at {peak / CHUNK_BYTES:.1f} MiB"


def test_a_reader_closed_early_releases_the_object(backend: ObjectBackend) -> None:
    content = b"x" * (3 * CHUNK_BYTES)
    backend.put("partly-read.bin", [content])
    _, chunks = backend.open("partly-read.bin")  # a first open warms any connection pool
    next(chunks)
    chunks.close()  # type: ignore[attr-defined]  # the interface promises close()
    before = _open_descriptors()

    for _ in range(20):
        _, chunks = backend.open("partly-read.bin")
        assert len(next(chunks)) > 0
        chunks.close()  # type: ignore[attr-defined]

    # Twenty abandoned readers that kept their file or connection would show here.
    assert _open_descriptors() <= before + 2
    assert backend.delete("partly-read.bin") is True
    with pytest.raises(ObjectMissing):
        backend.head("partly-read.bin")


def _open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


# -- replacing --------------------------------------------------------------------------


def test_put_replaces_an_existing_object_entirely(backend: ObjectBackend) -> None:
    backend.put("doc.bin", [b"old " * CHUNK_BYTES])
    new = b"shorter new content"

    stored = backend.put("doc.bin", [new])

    info, data = read(backend, "doc.bin")
    assert data == new
    assert (info.size, info.sha256) == (len(new), sha256(new)) == (stored.size, stored.sha256)
    assert keys_of(backend.list_objects("")) == ["doc.bin"]


def test_a_source_failing_midway_leaves_the_old_object_and_no_leftovers(
    backend: ObjectBackend, tmp_path: Path
) -> None:
    old = b"old content\n" * 1000
    backend.put("doc.bin", [old])
    before = files_under(tmp_path)

    with pytest.raises(SourceFailed):
        backend.put("doc.bin", failing_source(6))
    with pytest.raises(SourceFailed):
        backend.put("fresh.bin", failing_source(2))

    assert files_under(tmp_path) == before
    info, data = read(backend, "doc.bin")
    assert (data, info.sha256) == (old, sha256(old))
    with pytest.raises(ObjectMissing):
        backend.head("fresh.bin")
    assert keys_of(backend.list_objects("")) == ["doc.bin"]


def test_a_checksum_mismatch_stores_nothing(backend: ObjectBackend, tmp_path: Path) -> None:
    old, new = b"old content", b"new content"
    backend.put("doc.bin", [old])
    declared = sha256(b"something else")
    before = files_under(tmp_path)

    with pytest.raises(ChecksumMismatch) as caught:
        backend.put("doc.bin", [new], expected_sha256=declared)
    with pytest.raises(ChecksumMismatch):
        backend.put("fresh.bin", [new], expected_sha256=declared)

    assert declared in str(caught.value) and sha256(new) in str(caught.value)
    assert files_under(tmp_path) == before
    assert read(backend, "doc.bin")[1] == old
    with pytest.raises(ObjectMissing):
        backend.head("fresh.bin")


def test_a_matching_declared_checksum_is_accepted(backend: ObjectBackend) -> None:
    stored = backend.put("doc.bin", [b"content"], expected_sha256=sha256(b"content"))

    assert stored.sha256 == sha256(b"content")
    assert read(backend, "doc.bin")[1] == b"content"


# -- describing and deleting ------------------------------------------------------------


def test_head_describes_the_object_as_put_did(backend: ObjectBackend) -> None:
    stored = backend.put("a/b/c.json", [b'{"ok": true}'])

    info = backend.head("a/b/c.json")

    assert info == stored
    assert (info.key, info.size, info.sha256) == ("a/b/c.json", 12, sha256(b'{"ok": true}'))
    assert_recent_utc(info.modified)


@pytest.mark.parametrize("key", ["never-written.txt", "no/such/folder/file.txt"])
def test_an_absent_key_is_missing(backend: ObjectBackend, key: str) -> None:
    backend.put("present.txt", [b"here"])

    with pytest.raises(ObjectMissing):
        backend.open(key)
    with pytest.raises(ObjectMissing):
        backend.head(key)


def test_delete_removes_the_object_once(backend: ObjectBackend) -> None:
    backend.put("dir/doomed.txt", [b"bye"])
    backend.put("dir/kept.txt", [b"stay"])

    assert backend.delete("dir/doomed.txt") is True
    assert backend.delete("dir/doomed.txt") is False
    assert backend.delete("never/was.txt") is False

    with pytest.raises(ObjectMissing):
        backend.open("dir/doomed.txt")
    assert keys_of(backend.list_objects("")) == ["dir/kept.txt"]
    assert read(backend, "dir/kept.txt")[1] == b"stay"


# -- listing ------------------------------------------------------------------------------

LISTED = ["a/x", "a/y/z", "ab", "a b", "b", "B", "é", "z", "日本/語"]


@pytest.fixture
def listed(backend: ObjectBackend) -> dict[str, bytes]:
    """``LISTED`` stored in a shuffled order, each with content of its own length."""
    contents = {key: key.encode() * (index + 1) for index, key in enumerate(LISTED)}
    for key in reversed(LISTED):
        backend.put(key, [contents[key]])
    return contents


def test_list_objects_returns_every_key_in_byte_order(
    backend: ObjectBackend, listed: dict[str, bytes]
) -> None:
    objects = backend.list_objects("")

    assert keys_of(objects) == sorted(LISTED, key=lambda key: key.encode())
    for obj in objects:
        assert obj.size == len(listed[obj.key])
        assert obj.sha256 in (None, sha256(listed[obj.key]))
        assert_recent_utc(obj.modified)


@pytest.mark.parametrize(
    ("prefix", "expected"),
    [
        ("a", ["a b", "a/x", "a/y/z", "ab"]),
        ("a/", ["a/x", "a/y/z"]),
        ("a/y", ["a/y/z"]),
        ("a/y/z", ["a/y/z"]),
        ("b", ["b"]),
        ("日", ["日本/語"]),
        ("c", []),
        ("a/q/", []),
    ],
)
def test_list_objects_matches_the_prefix_as_a_string(
    backend: ObjectBackend, listed: dict[str, bytes], prefix: str, expected: list[str]
) -> None:
    assert keys_of(backend.list_objects(prefix)) == expected


def test_list_objects_pages_with_after_and_limit(backend: ObjectBackend) -> None:
    inside = [f"k/{n:02d}" for n in range(7)]
    for key in ["j", *inside, "l"]:
        backend.put(key, [b"."])

    pages: list[list[str]] = []
    after = ""
    while page := keys_of(backend.list_objects("k/", after=after, limit=3)):
        pages.append(page)
        after = page[-1]

    assert pages == [inside[0:3], inside[3:6], inside[6:]]
    assert keys_of(backend.list_objects("k/", after="k/02x", limit=2)) == ["k/03", "k/04"]
    assert keys_of(backend.list_objects("k/", after="a", limit=1)) == ["k/00"]
    assert keys_of(backend.list_objects("", after="k/05")) == ["k/06", "l"]
    assert backend.list_objects("k/", after="k/06") == []
    assert backend.list_objects("k/", after="zzz") == []


TRICKY = ["a!", "a.b", "a/b-c", "a/b.c", "a/b/c", "a/b0", "a-b/c", "a0", "ab/c/d", "b"]
"""Names around '/' in byte order ('!', '-' and '.' sort before it, '0' after): a
listing that visits folders in name order instead would return them out of order."""


@pytest.mark.parametrize("prefix", ["", "a", "a/", "a/b", "ab/"])
def test_every_page_from_every_start_is_the_sorted_keys_that_follow(
    backend: ObjectBackend, prefix: str
) -> None:
    for key in TRICKY:
        backend.put(key, [b"."])
    ordered = sorted(TRICKY, key=lambda key: key.encode())

    for after in ["", "a", "a/", "a/b", "a/b/", "a.c", *TRICKY]:
        expected = [k for k in ordered if k.startswith(prefix) and k.encode() > after.encode()]
        assert keys_of(backend.list_objects(prefix, after=after, limit=2)) == expected[:2]
        assert keys_of(backend.list_objects(prefix, after=after)) == expected


def test_list_objects_of_an_account_with_nothing_is_empty(backend: ObjectBackend) -> None:
    assert backend.list_objects("") == []
    assert backend.list_objects("a/") == []


def test_a_sibling_account_is_invisible(accounts: Accounts) -> None:
    """Accounts ``acct-a`` and ``acct-ab``: one name is a string prefix of the other."""
    mine, sibling = accounts("acct-a"), accounts("acct-ab")
    mine.put("shared.txt", [b"mine"])
    sibling.put("shared.txt", [b"sibling's"])
    sibling.put("only-sibling.txt", [b"sibling's"])

    assert keys_of(mine.list_objects("")) == ["shared.txt"]
    assert mine.list_objects("only") == []
    assert read(mine, "shared.txt")[1] == b"mine"
    with pytest.raises(ObjectMissing):
        mine.head("only-sibling.txt")
    assert mine.delete("only-sibling.txt") is False
    assert keys_of(sibling.list_objects("")) == ["only-sibling.txt", "shared.txt"]
    assert read(sibling, "shared.txt")[1] == b"sibling's"


# -- keys -------------------------------------------------------------------------------

UNUSUAL_KEYS = [
    "with space/file name.txt",
    "ünïcödé/日本語 ファイル.bin",
    "emoji 🎉.txt",
    "literal%20percent",
    "symbols/!$&'()+,;=@[]~#.txt",
]


@pytest.mark.parametrize("key", UNUSUAL_KEYS)
def test_keys_with_spaces_unicode_and_symbols_round_trip(backend: ObjectBackend, key: str) -> None:
    assert validate_key(key) == key
    content = key.encode() * 3

    stored = backend.put(key, [content])

    assert stored.key == key
    assert read(backend, key)[1] == content
    assert backend.head(key).sha256 == sha256(content)
    assert keys_of(backend.list_objects("")) == [key]
    assert keys_of(backend.list_objects(key)) == [key]
    assert backend.delete(key) is True
    assert backend.list_objects("") == []
