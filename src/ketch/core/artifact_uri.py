"""Artifact URIs (``ketch://<account>/<key>``) and the rules every object key follows.

A key is a relative path of ``/``-separated segments. Keys reach ketch through URLs,
URIs, tar members and the CLI, each with its own escaping, so a key is checked in the
form it takes after percent-decoding is applied until nothing changes: ``%2e%2e``,
``%252e%252e`` and ``..`` are all the same traversal and all refused. The key itself is
stored as given. Storage backends check containment again when they resolve a key;
this is the first of two locks, not the only one.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from urllib.parse import unquote

from ketch.core.errors import InvalidInput
from ketch.core.krn import validate_account_id

SCHEME = "ketch://"
MAX_KEY_BYTES = 1024
"""As S3: a key is at most 1,024 bytes of UTF-8."""
MAX_SEGMENT_BYTES = 255
"""What a local file system allows for one file name."""
MAX_DECODE_ROUNDS = 8
"""A key still changing after this many percent-decodings is refused as an encoding trick."""
RESERVED_PREFIX = ".ketch"
"""Segments starting with this name ketch's own (staging files, metadata): never a key's."""

KEY_RULE = (
    "a relative path of '/'-separated names, at most 1,024 bytes; no empty, '.' or '..' "
    "segments, no leading '/', no backslashes or control characters"
)


@dataclass(frozen=True, slots=True)
class ArtifactUri:
    """An account and a key (``""`` for the account's root, as a listing prefix)."""

    account: str
    key: str

    def __str__(self) -> str:
        return f"{SCHEME}{self.account}/{self.key}"

    def child(self, relative: str) -> ArtifactUri:
        """The URI of ``relative`` under this one (a directory upload's members)."""
        base = self.key.rstrip("/")
        return ArtifactUri(self.account, f"{base}/{relative}" if base else relative)


def parse_uri(text: str, *, allow_prefix: bool = False) -> ArtifactUri:
    """``ketch://<account>/<key>``, validated; a prefix may be empty or end in ``/``."""
    if not isinstance(text, str) or not text.startswith(SCHEME):
        raise InvalidInput(f"artifact URI {_shown(text)} must look like ketch://<account>/<key>")
    account, _, key = text[len(SCHEME) :].partition("/")
    validate_account_id(account)
    return ArtifactUri(account, validate_key(key, allow_prefix=allow_prefix))


def validate_key(key: object, *, allow_prefix: bool = False) -> str:
    """Return ``key`` if it is a safe object key, else raise :class:`InvalidInput`.

    With ``allow_prefix``, ``""`` (everything) and a trailing ``/`` are accepted too.
    """
    if not isinstance(key, str):
        raise InvalidInput(f"artifact key must be a string ({KEY_RULE})")
    if key == "" and allow_prefix:
        return key
    decoded = _decoded_to_fixed_point(key)
    body = decoded[:-1] if allow_prefix and decoded.endswith("/") else decoded
    _check_path(key, body)
    return key


def _decoded_to_fixed_point(key: str) -> str:
    current = key
    for _ in range(MAX_DECODE_ROUNDS):
        try:
            decoded = unquote(current, errors="strict")
        except UnicodeDecodeError:
            raise InvalidInput(f"artifact key {_shown(key)} decodes to invalid UTF-8") from None
        if decoded == current:
            return current
        current = decoded
    raise InvalidInput(f"artifact key {_shown(key)} is encoded too many times ({KEY_RULE})")


def _check_path(original: str, path: str) -> None:
    shown = _shown(original)
    if path == "":
        raise InvalidInput(f"artifact key must not be empty ({KEY_RULE})")
    # Lengths count the form that is stored (a file name of three bytes per "%41");
    # decoding only ever shortens a key, so the decoded form is within them too.
    if _utf8_length(original) > MAX_KEY_BYTES:
        raise InvalidInput(f"artifact key {shown} is longer than {MAX_KEY_BYTES} bytes")
    if any(_utf8_length(segment) > MAX_SEGMENT_BYTES for segment in original.split("/")):
        raise InvalidInput(f"artifact key {shown} has a name longer than 255 bytes")
    if any(unicodedata.category(ch) in {"Cc", "Cf", "Cs", "Co", "Cn"} for ch in path):
        raise InvalidInput(f"artifact key {shown} contains control or invalid characters")
    if "\\" in path:
        raise InvalidInput(f"artifact key {shown} must not contain backslashes ({KEY_RULE})")
    if path.startswith("/") or (len(path) > 1 and path[1] == ":"):
        raise InvalidInput(f"artifact key {shown} must be relative ({KEY_RULE})")
    for segment in path.split("/"):
        # NFKC folds look-alikes (a fullwidth full stop is '.') that some systems equate.
        folded = unicodedata.normalize("NFKC", segment)
        if segment == "" or folded in {".", ".."}:
            raise InvalidInput(f"artifact key {shown} has an empty, '.' or '..' segment")
        if folded.lower().startswith(RESERVED_PREFIX):
            raise InvalidInput(f"artifact key {shown}: names starting '.ketch' are reserved")


def _utf8_length(text: str) -> int:
    return len(text.encode("utf-8", errors="surrogatepass"))


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
