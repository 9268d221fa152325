"""Reading what a Cedar policy can depend on: its actions, the context, named entities."""

from __future__ import annotations

import json
from typing import Any

import cedarpy

from ketch.iam import Action
from ketch.iam.cedar_schema import ACTION_GROUPS
from ketch.iam.policy_use import action_scope, context_keys, entities_named


def policy(text: str) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(cedarpy.policies_to_json_str(text))
    return next(iter(parsed["staticPolicies"].values()))


def test_action_scope_lists_what_the_scope_admits() -> None:
    assert action_scope(policy("permit(principal, action, resource);")) is None
    assert action_scope(
        policy('permit(principal, action == Ketch::Action::"DescribeAccount", resource);')
    ) == {"DescribeAccount"}
    listed = policy(
        "permit(principal, action in "
        '[Ketch::Action::"DescribeAccount", Ketch::Action::"UpdateAccount"], resource);'
    )
    assert action_scope(listed) == {"DescribeAccount", "UpdateAccount"}


def test_a_group_in_the_scope_admits_its_members_and_itself() -> None:
    scope = action_scope(
        policy('permit(principal, action in Ketch::Action::"ReadOnlyActions", resource);')
    )
    assert scope is not None
    assert {a.value for a in ACTION_GROUPS["ReadOnlyActions"]} < scope
    assert "ReadOnlyActions" in scope
    assert Action.CREATE_TRAINING_JOB.value not in scope


def test_context_keys_are_the_attributes_read_or_tested() -> None:
    read = policy(
        "forbid(principal, action, resource) when "
        '{ context.account_stage == "sandbox" && context has instance_rank && '
        'context["instance_rank"] > 3 };'
    )
    assert context_keys([read]) == {"account_stage", "instance_rank"}
    assert context_keys([policy("permit(principal, action, resource);")]) == frozenset()


def test_a_nested_attribute_counts_as_its_top_level_key() -> None:
    nested = policy("permit(principal, action, resource) when { context has a.b && context.a.b };")
    assert context_keys([nested]) == {"a"}


def test_the_context_as_a_whole_needs_every_key() -> None:
    whole = policy("permit(principal, action, resource) when { context == {} };")
    assert context_keys([policy("permit(principal, action, resource);"), whole]) is None


def test_entities_named_in_scopes_conditions_and_links() -> None:
    scoped = policy('permit(principal == Ketch::User::"alice", action, resource);')
    condition = policy(
        'permit(principal, action, resource) when { resource == Ketch::TrainingJob::"j" };'
    )
    in_a_set = policy(
        'permit(principal, action, resource) when { [Ketch::Endpoint::"e"].contains(resource) };'
    )
    link = {"values": {"?resource": {"type": "Ketch::Account", "id": "a"}}}
    assert entities_named([scoped, condition, in_a_set, link]) == {
        ("Ketch::User", "alice"),
        ("Ketch::TrainingJob", "j"),
        ("Ketch::Endpoint", "e"),
        ("Ketch::Account", "a"),
    }
    assert entities_named([policy("permit(principal, action, resource);")]) == frozenset()
