"""What a job may carry: hyperparameters, its own environment variables, channel names.

Shared by the wire schema (a job is refused at submission) and the job contract (which
builds the job's argv and environment from them), so that nothing the API accepts is
refused later when the job starts.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping

from ketch.core.errors import InvalidInput

__all__ = [
    "MAX_HYPERPARAMETERS",
    "HyperparameterValue",
    "check_names",
    "refuse_case_clashes",
    "validate_hyperparameters",
    "validate_user_environment",
]

HyperparameterValue = str | int | float | bool

MAX_HYPERPARAMETERS = 100
MAX_HYPERPARAMETER_VALUE = 2500
MAX_HYPERPARAMETERS_BYTES = 96 * 1024
"""Encoded size cap: ``SM_HPS`` and ``SM_TRAINING_ENV`` carry every hyperparameter, and
Linux refuses to start a process with one variable over 128 KiB."""
MAX_ENVIRONMENT = 100
MAX_ENVIRONMENT_VALUE = 2048

_HYPERPARAMETER_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,255}", re.ASCII)
_CHANNEL_NAME = re.compile(r"[A-Za-z0-9_.\-]{1,64}", re.ASCII)
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,255}", re.ASCII)

_RESERVED_PREFIXES = ("SM_", "KETCH_", "LD_", "SAGEMAKER_")
_RESERVED_NAMES = frozenset(
    {"PATH", "HOME", "TMPDIR", "PYTHONPATH", "PYTHONHOME", "TRAINING_JOB_NAME", "CURRENT_HOST"}
)
"""User variables may not change the contract, where the interpreter and its libraries come
from (``LD_PRELOAD`` would also reach any wrapper an executor puts before the job), or move
HOME and TMPDIR out of the job root."""


def validate_hyperparameters(
    hyperparameters: Mapping[str, object],
) -> dict[str, HyperparameterValue]:
    """The hyperparameters, checked against SageMaker's limits (100 names of up to 256
    characters, values of up to 2,500) and kept to plain values; :class:`InvalidInput`
    names the offending key. Names differing only in case are refused: they would share
    an ``SM_HP_`` variable."""
    if len(hyperparameters) > MAX_HYPERPARAMETERS:
        raise InvalidInput(f"at most {MAX_HYPERPARAMETERS} hyperparameters are allowed")
    checked = {
        _hyperparameter_name(k): _hyperparameter_value(k, v) for k, v in hyperparameters.items()
    }
    refuse_case_clashes("hyperparameter", checked)
    encoded = len(json.dumps(checked, ensure_ascii=True))
    if encoded > MAX_HYPERPARAMETERS_BYTES:
        raise InvalidInput(
            f"hyperparameters take {encoded} bytes as JSON; at most {MAX_HYPERPARAMETERS_BYTES}"
        )
    return checked


def _hyperparameter_name(name: object) -> str:
    if not isinstance(name, str) or not _HYPERPARAMETER_NAME.fullmatch(name):
        raise InvalidInput(
            f"hyperparameter name {str(name)[:60]!r} is not allowed; use 1-256 of "
            "A-Z a-z 0-9 _ . - (not starting with . or -)"
        )
    return name


def _hyperparameter_value(name: str, value: object) -> HyperparameterValue:
    if isinstance(value, bool | int):
        if value.bit_length() > 10_000:  # str() of an int over 4,300 digits raises
            raise InvalidInput(f"hyperparameter {name!r} is too large a number")
        text = str(value)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidInput(f"hyperparameter {name!r} is {value}; use a finite number")
        text = str(value)
    elif isinstance(value, str):
        text = value
        if "\x00" in value or not _encodable(value):
            raise InvalidInput(f"hyperparameter {name!r} has a NUL or unpaired surrogate")
    else:
        raise InvalidInput(
            f"hyperparameter {name!r} is a {type(value).__name__}; "
            "use a string, an integer, a finite number or a boolean"
        )
    if len(text) > MAX_HYPERPARAMETER_VALUE:
        raise InvalidInput(
            f"hyperparameter {name!r} has {len(text)} characters; at most "
            f"{MAX_HYPERPARAMETER_VALUE}"
        )
    return value


def validate_user_environment(variables: Mapping[str, object]) -> dict[str, str]:
    """The user's variables, checked: portable names, string values without NUL, and none
    of the contract's own (``SM_*``, ``KETCH_*``, ``SAGEMAKER_*``, ``LD_*``, ``PATH``,
    ``PYTHONPATH``, ``PYTHONHOME``, ``HOME``, ``TMPDIR``, ``TRAINING_JOB_NAME``)."""
    if len(variables) > MAX_ENVIRONMENT:
        raise InvalidInput(f"at most {MAX_ENVIRONMENT} environment variables are allowed")
    checked: dict[str, str] = {}
    for name, value in variables.items():
        if not isinstance(name, str) or not _ENV_NAME.fullmatch(name):
            raise InvalidInput(
                f"environment variable name {str(name)[:60]!r} is not allowed; use "
                "A-Z a-z 0-9 _ (not starting with a digit)"
            )
        if name.upper() in _RESERVED_NAMES or name.upper().startswith(_RESERVED_PREFIXES):
            raise InvalidInput(
                f"environment variable {name!r} is set by ketch for every job; "
                f"choose a name outside {', '.join(p + '*' for p in _RESERVED_PREFIXES)} "
                f"and {', '.join(sorted(_RESERVED_NAMES))}"
            )
        if not isinstance(value, str) or "\x00" in value or not _encodable(value):
            raise InvalidInput(f"environment variable {name!r} must be a string without NUL")
        if len(value) > MAX_ENVIRONMENT_VALUE:
            raise InvalidInput(
                f"environment variable {name!r} is longer than {MAX_ENVIRONMENT_VALUE} characters"
            )
        checked[name] = value
    return checked


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_names(what: str, names: tuple[str, ...]) -> None:
    for name in names:
        if not _CHANNEL_NAME.fullmatch(name) or set(name) == {"."}:
            raise InvalidInput(
                f"{what} name {name[:70]!r} is not allowed; use 1-64 of A-Z a-z 0-9 _ . - "
                "(not only dots)"
            )
    refuse_case_clashes(what, names)


def refuse_case_clashes(what: str, names: Mapping[str, object] | tuple[str, ...]) -> None:
    seen: dict[str, str] = {}
    for name in names:
        if name.upper() in seen:
            other = seen[name.upper()]
            raise InvalidInput(
                f"{what} names {other!r} and {name!r} clash (upper-cased in variable names); "
                "use distinct names"
            )
        seen[name.upper()] = name
