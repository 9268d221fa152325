"""Checking Cedar text for permission sets and guardrails before it is stored.

A permission set is one or more ``permit`` templates whose scope names both slots
(``principal in ?principal`` and ``resource in ?resource``); an assignment fills them.
A guardrail is one or more ``forbid`` templates whose scope names ``resource in
?resource`` only; ketch links the slot to the OU the guardrail is attached to, so it
holds in every account below. Text is validated against ketch's Cedar schema in strict
mode; an unknown action or entity type, or a type error, is rejected with Cedar's own
message.
"""

from __future__ import annotations

import json
from functools import cache, lru_cache
from typing import Any

import cedarpy

from ketch.core.errors import InvalidInput
from ketch.iam.cedar_schema import schema_text

MAX_POLICY_TEXT = 64 * 1024


@cache
def cedar_schema() -> cedarpy.Schema:
    """The parsed schema handle (parsed once per process)."""
    return cedarpy.Schema.from_str(schema_text())


def _parse(text: str, what: str) -> dict[str, Any]:
    """Cedar JSON of ``text``, validated; a fresh copy each call (callers may change it)."""
    parsed: dict[str, Any] = json.loads(_validated_json(text, what))
    return parsed


@lru_cache(maxsize=512)
def _validated_json(text: str, what: str) -> str:
    """Parsing and strict validation, once per distinct text (every recompile reuses it).

    Only successes are cached: an invalid text raises every time.
    """
    if len(text) > MAX_POLICY_TEXT:
        raise InvalidInput(f"{what} is longer than {MAX_POLICY_TEXT} characters")
    if not text.strip():
        raise InvalidInput(f"{what} is empty; give at least one Cedar policy")
    try:
        parsed: dict[str, Any] = json.loads(cedarpy.policies_to_json_str(text))
    except ValueError as exc:
        raise InvalidInput(f"{what} is not valid Cedar: {exc}") from exc
    result = cedarpy.validate_policies(text, cedar_schema())
    if not result.validation_passed:
        problems = "; ".join(error.error for error in result.errors[:5])
        raise InvalidInput(f"{what} does not validate against ketch's Cedar schema: {problems}")
    return json.dumps(parsed)


def _slot(scope: dict[str, Any]) -> str | None:
    slot = scope.get("slot")
    return slot if scope.get("op") == "in" and isinstance(slot, str) else None


def permission_set_templates(text: str) -> list[dict[str, Any]]:
    """The templates (Cedar JSON) of a permission set's text, or :class:`InvalidInput`."""
    parsed = _parse(text, "permission set policy")
    if parsed["staticPolicies"]:
        raise InvalidInput(
            "every policy of a permission set must be a template scoped "
            "'principal in ?principal' and 'resource in ?resource'; found a policy without slots"
        )
    templates = list(parsed["templates"].values())
    for template in templates:
        if template["effect"] != "permit":
            raise InvalidInput(
                "a permission set only grants (permit); put forbid rules in a guardrail"
            )
        if (
            _slot(template["principal"]) != "?principal"
            or _slot(template["resource"]) != "?resource"
        ):
            raise InvalidInput(
                "a permission set template must be scoped "
                "'principal in ?principal' and 'resource in ?resource'"
            )
    return templates


def guardrail_templates(text: str) -> list[dict[str, Any]]:
    """The templates (Cedar JSON) of a guardrail's text, or :class:`InvalidInput`."""
    parsed = _parse(text, "guardrail policy")
    templates = list(parsed["templates"].values())
    if parsed["staticPolicies"] or not templates:
        raise InvalidInput(
            "every policy of a guardrail must be a forbid template scoped 'resource in ?resource' "
            "(ketch links ?resource to the OU the guardrail is attached to)"
        )
    for template in templates:
        if template["effect"] != "forbid":
            raise InvalidInput("a guardrail only forbids; grant access with a permission set")
        if _slot(template["resource"]) != "?resource" or "slot" in template["principal"]:
            raise InvalidInput(
                "a guardrail template must be scoped 'resource in ?resource' and must not "
                "use ?principal"
            )
    return templates


def condition_of(cedar_expression: str) -> dict[str, Any]:
    """A ``when`` condition (Cedar JSON) from an expression in Cedar syntax."""
    parsed = json.loads(
        cedarpy.policies_to_json_str(
            f"permit(principal, action, resource) when {{ {cedar_expression} }};"
        )
    )
    condition: dict[str, Any] = parsed["staticPolicies"]["policy0"]["conditions"][0]
    return condition
