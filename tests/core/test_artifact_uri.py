"""Artifact URIs and keys: what is accepted, and every spelling of a traversal refused."""

from __future__ import annotations

import pytest

from ketch.core.artifact_uri import ArtifactUri, parse_uri, validate_key
from ketch.core.errors import InvalidInput


@pytest.mark.parametrize(
    "key",
    [
        "data/train.csv",
        "a",
        "models/v1/model.tar.gz",
        "with space/ü.txt",
        "100%25 done.csv",
        "a.b/c..d",
    ],
)
def test_plain_relative_keys_are_accepted_as_given(key: str) -> None:
    assert validate_key(key) == key


@pytest.mark.parametrize(
    "key",
    [
        "",
        "../etc/passwd",
        "a/../../b",
        "a/./b",
        "/abs/path",
        "a//b",
        "a/",
        "a\\b",
        "C:/windows",
        "%2e%2e/x",
        "%252e%252e/x",
        "a%2f..%2fb",
        "%25252525252525252e%2e/x",
        "\uff0e\uff0e/x",  # fullwidth full stops fold to '..'
        "a\x00b",
        "a\nb",
        "a\u202eb",  # right-to-left override
        "%ff%fe",  # not UTF-8 once decoded
        ".ketch/meta/x",
        "x/.KETCH-staging",
        "a" * 1025,
        "d/" + "n" * 256,
        "d/" + "%41" * 100,  # 100 bytes decoded, a 300-byte file name as stored
        "%41" * 400,  # 400 bytes decoded, 1,200 as stored
    ],
)
def test_unsafe_keys_are_refused(key: str) -> None:
    with pytest.raises(InvalidInput):
        validate_key(key)


def test_a_prefix_may_be_empty_or_end_with_a_slash() -> None:
    assert validate_key("", allow_prefix=True) == ""
    assert validate_key("data/", allow_prefix=True) == "data/"
    with pytest.raises(InvalidInput):
        validate_key("../", allow_prefix=True)


def test_uris_parse_and_print_back() -> None:
    uri = parse_uri("ketch://fraud-dev/data/train.csv")
    assert uri == ArtifactUri("fraud-dev", "data/train.csv")
    assert str(uri) == "ketch://fraud-dev/data/train.csv"
    assert uri.child("x.csv") == ArtifactUri("fraud-dev", "data/train.csv/x.csv")
    assert parse_uri("ketch://fraud-dev/", allow_prefix=True).child("a") == ArtifactUri(
        "fraud-dev", "a"
    )


@pytest.mark.parametrize(
    "text", ["s3://bucket/key", "ketch://", "ketch://Bad_Account/x", "ketch://fraud-dev/../x", 42]
)
def test_malformed_uris_are_refused(text: object) -> None:
    with pytest.raises(InvalidInput):
        parse_uri(text)  # type: ignore[arg-type]
