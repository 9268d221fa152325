"""What a Cedar policy can depend on: the actions its scope admits, the context it reads.

Cedar evaluates every policy of a set on every request, so the engine builds each
request's set from only the policies whose scope admits the request's action.

The entities a set names literally go into the entity slices it decides on (a policy may
read their attributes or ancestors), and their types tell the engine when a new resource
may be decided through a stand-in of its type (see ``CompiledPolicies.stand_in_slice``).

Cedar also parses every attribute of a request's context on every decision, and that parse
is most of a decision's cost (an ``ip`` value alone costs tens of microseconds). A
policy reads the context only as ``context.name``, ``context["name"]`` or ``context has
name``, so a request can carry just the attributes its policy set names and be decided
exactly as with the whole context: an attribute no policy reads cannot change a
decision, and one a policy reads is passed, or left absent, as before. A policy that
uses ``context`` as a whole value (``context == {...}``) gets the whole context.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ketch.iam.cedar_schema import ACTION_GROUPS

CONTEXT = {"Var": "context"}
"""The Cedar JSON (EST) form of the ``context`` variable."""
ATTRIBUTE_OPERATORS = (".", "has")
"""EST operators that name one attribute of their ``left`` operand: access and ``has``."""


def action_scope(policy: dict[str, Any]) -> frozenset[str] | None:
    """The ids of the actions ``policy``'s scope admits; ``None`` for every action.

    ``action in G`` admits ``G`` and, for one of ketch's action groups, its members.
    """
    scope = policy["action"]
    operator = scope["op"]
    if operator not in ("==", "in"):
        return None  # "All", or a form this reading does not know: keep the policy
    refs = [scope["entity"]] if "entity" in scope else scope["entities"]
    admitted: set[str] = set()
    for ref in refs:
        admitted.add(ref["id"])
        if operator == "in" and ref["id"] in ACTION_GROUPS:
            admitted |= {action.value for action in ACTION_GROUPS[ref["id"]]}
    return frozenset(admitted)


class _WholeContext(Exception):
    """Raised by the walk when a policy uses the context as a whole value."""


def context_keys(policies: Iterable[dict[str, Any]]) -> frozenset[str] | None:
    """The context attributes ``policies`` (Cedar JSON) can read; ``None`` for all of them."""
    keys: set[str] = set()
    try:
        for policy in policies:
            _walk(policy, keys)
    except _WholeContext:
        return None
    return frozenset(keys)


def _walk(node: Any, keys: set[str]) -> None:
    if isinstance(node, list):
        for item in node:
            _walk(item, keys)
        return
    if not isinstance(node, dict):
        return
    if node == CONTEXT:
        raise _WholeContext
    for operator in ATTRIBUTE_OPERATORS:
        operand = node.get(operator)
        if isinstance(operand, dict) and operand.get("left") == CONTEXT and len(node) == 1:
            keys.add(operand["attr"])
            return
    for value in node.values():
        _walk(value, keys)


def entities_named(policies: Iterable[dict[str, Any]]) -> frozenset[tuple[str, str]]:
    """Every entity ``policies`` (Cedar JSON, links too) name literally, as (type, id)."""
    named: set[tuple[str, str]] = set()
    _collect_entities(list(policies), named)
    return frozenset(named)


def _collect_entities(node: Any, named: set[tuple[str, str]]) -> None:
    if isinstance(node, list):
        for item in node:
            _collect_entities(item, named)
    elif isinstance(node, dict):
        if isinstance(node.get("type"), str) and isinstance(node.get("id"), str):
            named.add((node["type"], node["id"]))
        for value in node.values():
            _collect_entities(value, named)
