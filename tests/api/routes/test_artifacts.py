"""The artifact routes over HTTP: streaming up and down, checksums, listing, authorisation,
audit, and the bad input of the issue (traversal in every spelling, wrong media types)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from support.envelope import assert_envelope

Headers = dict[str, str]
API = "/api/v1"
BINARY = {"Content-Type": "application/octet-stream"}
PASSWORD = "Correct-Horse-9-battery"


@pytest.fixture
def account(http: TestClient, auth_headers: Headers) -> str:
    body = {"id": "fraud-dev", "stage": "dev", "ou": "teams/fraud", "create_missing_ous": True}
    response = http.post(f"{API}/accounts", json=body, headers=auth_headers)
    assert response.status_code == 201, response.text
    return "fraud-dev"


def _url(account: str, key: str) -> str:
    return f"{API}/accounts/{account}/artifacts/{key}"


def test_an_upload_streams_in_and_back_out_with_its_checksum(
    http: TestClient, auth_headers: Headers, account: str
) -> None:
    payload = bytes(range(256)) * 8192  # 2 MiB, several chunks
    digest = hashlib.sha256(payload).hexdigest()

    def body() -> Iterator[bytes]:
        for start in range(0, len(payload), 300_000):
            yield payload[start : start + 300_000]

    stored = http.put(
        _url(account, "data/train.bin"),
        content=body(),
        headers={**auth_headers, **BINARY, "X-Ketch-Sha256": digest},
    )
    assert stored.status_code == 200, stored.text
    assert stored.json() | {"modified": None} == {
        "uri": "ketch://fraud-dev/data/train.bin",
        "account": "fraud-dev",
        "key": "data/train.bin",
        "size": len(payload),
        "sha256": digest,
        "modified": None,
    }
    fetched = http.get(_url(account, "data/train.bin"), headers=auth_headers)
    assert fetched.status_code == 200
    assert fetched.content == payload
    assert fetched.headers["x-ketch-sha256"] == digest
    assert fetched.headers["etag"] == f'"{digest}"'
    assert fetched.headers["content-length"] == str(len(payload))
    head = http.head(_url(account, "data/train.bin"), headers=auth_headers)
    assert head.status_code == 200
    assert head.headers["x-ketch-sha256"] == digest


def test_a_checksum_mismatch_stores_nothing(
    http: TestClient, auth_headers: Headers, account: str
) -> None:
    http.put(_url(account, "model.bin"), content=b"old", headers={**auth_headers, **BINARY})
    response = http.put(
        _url(account, "model.bin"),
        content=b"new content",
        headers={**auth_headers, **BINARY, "X-Ketch-Sha256": "0" * 64},
    )
    error = assert_envelope(response, 400, "ValidationError")
    assert "nothing was stored" in error["message"]
    assert http.get(_url(account, "model.bin"), headers=auth_headers).content == b"old"


def test_listing_pages_through_a_prefix(
    http: TestClient, auth_headers: Headers, account: str
) -> None:
    for name in ("a/1", "a/2", "a/3", "b/1"):
        http.put(_url(account, name), content=name.encode(), headers={**auth_headers, **BINARY})
    keys: list[str] = []
    token = None
    while True:
        params = {"prefix": "a/", "max_results": 2, **({"next_token": token} if token else {})}
        page = http.get(f"{API}/accounts/{account}/artifacts", params=params, headers=auth_headers)
        assert page.status_code == 200, page.text
        keys += [item["key"] for item in page.json()["items"]]
        token = page.json()["next_token"]
        if token is None:
            break
    assert keys == ["a/1", "a/2", "a/3"]
    tampered = http.get(
        f"{API}/accounts/{account}/artifacts",
        params={"prefix": "b/", "next_token": "not-a-token"},
        headers=auth_headers,
    )
    assert_envelope(tampered, 400, "ValidationError")


def test_delete_then_404(http: TestClient, auth_headers: Headers, account: str) -> None:
    http.put(_url(account, "tmp.txt"), content=b"x", headers={**auth_headers, **BINARY})
    assert http.delete(_url(account, "tmp.txt"), headers=auth_headers).status_code == 204
    assert_envelope(http.get(_url(account, "tmp.txt"), headers=auth_headers), 404, "NotFound")
    assert_envelope(http.delete(_url(account, "tmp.txt"), headers=auth_headers), 404, "NotFound")


@pytest.mark.parametrize(
    "key",
    [
        "..%2f..%2fetc%2fpasswd",
        "%2e%2e/%2e%2e/etc/passwd",
        "%252e%252e/secret",
        "a/%2e%2e/%2e%2e/b",
        ".ketch/meta/x",
        "a%00b",
        "%2fabsolute",
    ],
)
def test_traversal_in_any_spelling_is_refused_and_writes_nothing(
    http: TestClient,
    auth_headers: Headers,
    account: str,
    key: str,
    context,  # type: ignore[no-untyped-def]
) -> None:
    response = http.put(_url(account, key), content=b"x", headers={**auth_headers, **BINARY})
    assert_envelope(response, 400, "ValidationError")
    home = context.settings.home
    written = (
        [p for p in (home / "artifacts").rglob("*") if p.is_file()]
        if (home / "artifacts").exists()
        else []
    )
    assert written == []


def test_an_upload_must_be_binary_and_a_json_route_stays_json(
    http: TestClient, auth_headers: Headers, account: str
) -> None:
    as_json = http.put(_url(account, "x.json"), json={"a": 1}, headers=auth_headers)
    assert_envelope(as_json, 415, "UnsupportedMediaType")
    form = http.post(
        f"{API}/ous",
        content=b"x",
        headers={**auth_headers, "Content-Type": "application/octet-stream"},
    )
    assert_envelope(form, 415, "UnsupportedMediaType")


def test_an_upload_may_exceed_the_json_body_limit_but_not_its_own(
    http: TestClient,
    auth_headers: Headers,
    account: str,
    context,  # type: ignore[no-untyped-def]
) -> None:
    big = b"x" * (context.settings.server.max_body_bytes + 1)
    ok = http.put(_url(account, "big.bin"), content=big, headers={**auth_headers, **BINARY})
    assert ok.status_code == 200, ok.text
    context.settings.artifacts.max_object_bytes = 1024
    too_big = http.put(_url(account, "big2.bin"), content=big, headers={**auth_headers, **BINARY})
    assert_envelope(too_big, 413, "PayloadTooLarge")


def test_other_accounts_and_anonymous_callers_see_nothing(
    http: TestClient, auth_headers: Headers, account: str
) -> None:
    http.put(_url(account, "secret.csv"), content=b"s", headers={**auth_headers, **BINARY})
    created = http.post(
        f"{API}/users", json={"name": "mallory", "password": PASSWORD}, headers=auth_headers
    )
    assert created.status_code == 201
    token = http.post(
        f"{API}/auth/login", json={"username": "mallory", "password": PASSWORD}
    ).json()["token"]
    mallory = {"Authorization": f"Bearer {token}"}
    hidden = http.get(_url(account, "secret.csv"), headers=mallory)
    missing = http.get(_url("nope-account", "secret.csv"), headers=mallory)
    assert_envelope(hidden, 404, "NotFound")
    assert_envelope(missing, 404, "NotFound")
    # word for word what a missing account gets: the answer does not tell them apart
    assert hidden.json()["error"]["message"].replace(account, "X") == missing.json()["error"][
        "message"
    ].replace("nope-account", "X")
    assert_envelope(
        http.put(_url(account, "planted.csv"), content=b"p", headers={**mallory, **BINARY}),
        404,
        "NotFound",
    )
    assert_envelope(http.get(_url(account, "secret.csv")), 401, "Unauthenticated")


def test_uploads_and_deletes_are_audited(
    http: TestClient, auth_headers: Headers, account: str
) -> None:
    http.put(_url(account, "audited.txt"), content=b"a", headers={**auth_headers, **BINARY})
    http.delete(_url(account, "audited.txt"), headers=auth_headers)
    events = http.get(f"{API}/audit/events", headers=auth_headers).json()["items"]
    seen = [(e["action"], e["resource"], e["outcome"]) for e in events]
    assert ("PutArtifact", "krn:ketch:fraud-dev:artifact/audited.txt", "success") in seen
    assert ("DeleteArtifact", "krn:ketch:fraud-dev:artifact/audited.txt", "success") in seen


def test_the_same_routes_serve_an_account_kept_in_an_s3_bucket(
    http: TestClient,
    auth_headers: Headers,
    account: str,
    context,
    s3_server,  # type: ignore[no-untyped-def]
) -> None:
    from ketch.artifact_store import ArtifactStore
    from ketch.core.settings import AccountStorageSettings, ArtifactSettings, S3StorageSettings

    bucket = s3_server.create_bucket()
    s3 = S3StorageSettings(
        bucket=bucket,
        prefix="ketch",
        endpoint=s3_server.endpoint,
        region=s3_server.region,
        access_key_id=s3_server.access_key_id,
        secret_access_key=s3_server.secret_access_key,
        allow_http=True,
    )
    settings = ArtifactSettings(accounts={account: AccountStorageSettings(backend="s3", s3=s3)})
    context.artifacts = ArtifactStore(settings, context.settings.home)
    payload = b"label,amount\n1,9.5\n" * 1000
    stored = http.put(
        _url(account, "data/train.csv"),
        content=payload,
        headers={**auth_headers, **BINARY, "X-Ketch-Sha256": hashlib.sha256(payload).hexdigest()},
    )
    assert stored.status_code == 200, stored.text
    fetched = http.get(_url(account, "data/train.csv"), headers=auth_headers)
    assert fetched.content == payload
    assert fetched.headers["x-ketch-sha256"] == hashlib.sha256(payload).hexdigest()
    listed = http.get(f"{API}/accounts/{account}/artifacts", headers=auth_headers).json()
    assert [item["uri"] for item in listed["items"]] == ["ketch://fraud-dev/data/train.csv"]
    assert not (context.settings.home / "artifacts" / account).exists()
