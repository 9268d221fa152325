"""KRNs parse and format, and names and account ids follow one rule set with helpful errors."""

from __future__ import annotations

import pytest

from ketch.core.errors import InvalidInput
from ketch.core.krn import (
    ACCOUNT_ID_RULE,
    NAME_RULE,
    RESERVED_NAMES,
    RESOURCE_TYPE_RULE,
    Krn,
    krn,
    split_ou_path,
    validate_account_id,
    validate_name,
)

# -- KRN format ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("krn:ketch:fraud-dev:model/churn", Krn("fraud-dev", "model", "churn")),
        ("krn:ketch::account/fraud-dev", Krn("", "account", "fraud-dev")),
        ("krn:ketch::ou/teams/fraud", Krn("", "ou", "teams/fraud")),
        (
            "krn:ketch:abc:model-version/churn/v1.2_rc-3",
            Krn("abc", "model-version", "churn/v1.2_rc-3"),
        ),
    ],
)
def test_parse_and_format_round_trip(text: str, expected: Krn) -> None:
    parsed = Krn.parse(text)
    assert parsed == expected
    assert str(parsed) == text
    assert krn(expected.account, expected.resource_type, expected.name) == text


def test_krn_is_immutable() -> None:
    value = Krn.parse("krn:ketch:abc:model/m")
    with pytest.raises(AttributeError):
        value.name = "other"  # type: ignore[misc]


@pytest.mark.parametrize(
    "text",
    [
        "",
        "arn:aws:iam::123:user/x",
        "KRN:ketch::ou/x",
        "krn:ketch",
        "krn:ketch:abc",
        "krn:ketch:abc:model",  # no name
        "krn:ketch:abc:model/",  # empty name
        "krn:ketch:abc/model/name",  # no account separator
    ],
)
def test_parse_rejects_malformed_text_and_shows_the_format(text: str) -> None:
    with pytest.raises(InvalidInput, match="expected krn:ketch:<account>:<type>/<name>"):
        Krn.parse(text)


def test_parse_rejects_non_strings() -> None:
    with pytest.raises(InvalidInput, match="not a KRN"):
        Krn.parse(None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "resource_type", ["Model", "m", "model1", "mo_del", "a" * 33, "ou\n", "ou ", "-ou", ""]
)
def test_parse_rejects_bad_resource_types(resource_type: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        Krn.parse(f"krn:ketch::{resource_type}/teams")
    assert RESOURCE_TYPE_RULE in caught.value.message


@pytest.mark.parametrize(
    "text",
    [
        "krn:ketch:Fraud:model/m",  # account id uppercase
        "krn:ketch:ab:model/m",  # account id too short
        "krn:ketch:admin:model/m",  # reserved account id
        "krn:ketch::ou/teams//fraud",  # empty part
        "krn:ketch::ou/teams/../fraud",  # dot-dot part
        "krn:ketch::ou/teams/",  # trailing separator
        "krn:ketch::ou/teams/root",  # reserved part
        "krn:ketch::ou/te\x00ams",  # control character
        "krn:ketch:abc:model/m:extra",  # colon in the name
        "krn:ketch:abc:model/m%2F..",  # encoded separator
    ],
)
def test_parse_validates_every_part(text: str) -> None:
    with pytest.raises(InvalidInput):
        Krn.parse(text)


# -- account ids -----------------------------------------------------------------------


@pytest.mark.parametrize("value", ["abc", "fraud-dev", "a1b", "a-1-b", "a" * 40, "team42"])
def test_valid_account_ids(value: str) -> None:
    assert validate_account_id(value) == value


@pytest.mark.parametrize(
    "value",
    [
        "ab",  # too short
        "a" * 41,  # too long
        "Fraud",  # uppercase
        "1abc",  # starts with a digit
        "-abc",  # starts with a hyphen
        "abc-",  # ends with a hyphen
        "ab--cd",  # double hyphen
        "ab_cd",  # underscore
        "ab.cd",  # dot
        "ab cd",  # space
        "fr\u00e2ud",  # non-ASCII letter
        "\uff41\uff42\uff43",  # fullwidth letters
        "abc%2e",  # percent-encoding
    ],
)
def test_invalid_account_ids_name_the_rule(value: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        validate_account_id(value)
    assert ACCOUNT_ID_RULE in caught.value.message


@pytest.mark.parametrize("value", ["abc/def", "abc\\def", "/abc", "..\\abc"])
def test_account_ids_reject_path_separators(value: str) -> None:
    with pytest.raises(InvalidInput, match="path separators") as caught:
        validate_account_id(value)
    assert ACCOUNT_ID_RULE in caught.value.message


@pytest.mark.parametrize(
    "value",
    ["abc\n", "abc\r", "ab\x00c", "ab\tc", "abc\x7f", "ab\u200bc", "\u202eabc", "ab\u0085c"],
)
def test_account_ids_reject_control_and_format_characters(value: str) -> None:
    with pytest.raises(InvalidInput, match="control characters"):
        validate_account_id(value)


@pytest.mark.parametrize("value", sorted(w for w in RESERVED_NAMES if len(w) >= 3))
def test_reserved_words_are_not_account_ids(value: str) -> None:
    with pytest.raises(InvalidInput, match="reserved word; choose another name"):
        validate_account_id(value)


@pytest.mark.parametrize("value", [None, 123, b"abc", ["abc"]])
def test_account_id_must_be_a_string(value: object) -> None:
    with pytest.raises(InvalidInput, match="must be a string"):
        validate_account_id(value)


def test_empty_account_id_is_rejected_with_the_rule() -> None:
    with pytest.raises(InvalidInput, match="must not be empty") as caught:
        validate_account_id("")
    assert ACCOUNT_ID_RULE in caught.value.message


# -- names -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value", ["a", "A", "0", "churn", "model.v1", "my_model-2", "a..b", "x" * 63, "Admins"]
)
def test_valid_names(value: str) -> None:
    assert validate_name(value) == value


@pytest.mark.parametrize(
    "value",
    [
        "x" * 64,  # too long
        ".hidden",
        "-flag",
        "_private",
        "a b",
        "a:b",
        "a*",
        "%2e%2e",
        "a%2Fb",
        "caf\u00e9",
        "\uff41",  # fullwidth a
        "a\uff0fb",  # fullwidth solidus
        "a\u2215b",  # division slash
    ],
)
def test_invalid_names_name_the_rule(value: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        validate_name(value)
    assert NAME_RULE in caught.value.message


@pytest.mark.parametrize("value", [".", ".."])
def test_dot_names_are_rejected(value: str) -> None:
    with pytest.raises(InvalidInput, match="is not allowed") as caught:
        validate_name(value)
    assert NAME_RULE in caught.value.message


@pytest.mark.parametrize("value", ["a/b", "a\\b", "../etc", "..\\etc", "/"])
def test_names_reject_path_separators(value: str) -> None:
    with pytest.raises(InvalidInput, match="must not contain path separators"):
        validate_name(value)


@pytest.mark.parametrize("value", ["abc\n", "a\rb", "\x00", "a\x1bb", "a\u200db", "a\ufeff"])
def test_names_reject_control_characters(value: str) -> None:
    with pytest.raises(InvalidInput, match="control characters"):
        validate_name(value)


@pytest.mark.parametrize("value", [*sorted(RESERVED_NAMES), "Admin", "ROOT", "Me", "NuLL"])
def test_reserved_words_are_not_names_in_any_case(value: str) -> None:
    with pytest.raises(InvalidInput, match="reserved word"):
        validate_name(value)


def test_name_errors_use_the_given_kind() -> None:
    with pytest.raises(InvalidInput, match=r"^model name '\.x' is invalid"):
        validate_name(".x", kind="model name")
    with pytest.raises(InvalidInput, match=r"^model name must not be empty"):
        validate_name("", kind="model name")


def test_long_values_are_shortened_in_messages() -> None:
    with pytest.raises(InvalidInput) as caught:
        validate_name("-" + "x" * 500)
    assert len(caught.value.message) < 300
    assert "..." in caught.value.message


def test_errors_are_validation_errors() -> None:
    with pytest.raises(InvalidInput) as caught:
        validate_name("")
    assert caught.value.code == "ValidationError"


# -- OU paths --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "parts"),
    [
        ("", []),
        ("/", []),
        ("//", []),
        ("teams", ["teams"]),
        ("teams/fraud", ["teams", "fraud"]),
        ("/teams/fraud/", ["teams", "fraud"]),
    ],
)
def test_split_ou_path(path: str, parts: list[str]) -> None:
    assert split_ou_path(path) == parts


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("teams//fraud", "OU name must not be empty"),
        ("teams/../fraud", "OU name '..' is not allowed"),
        ("teams/./fraud", "OU name '.' is not allowed"),
        ("teams\\fraud", "must not contain path separators"),
        ("teams/admin", "reserved word"),
        ("teams/fr aud", "OU name 'fr aud' is invalid"),
        ("teams/\x00", "control characters"),
    ],
)
def test_split_ou_path_validates_each_part(path: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        split_ou_path(path)


def test_split_ou_path_needs_a_string() -> None:
    with pytest.raises(InvalidInput, match="OU path must be a string"):
        split_ou_path(["teams"])  # type: ignore[arg-type]
