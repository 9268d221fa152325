"""The multi-team organisation of the acceptance criteria, decided cell by cell.

OUs ``platform``, ``teams/fraud/{dev,prod}``, ``teams/churn/dev``; accounts ``fraud-dev``,
``fraud-prod``, ``churn-dev``. alice is DataScientist in fraud-dev and ReadOnly in
fraud-prod; bob is DataScientist in churn-dev through the ``churn-ds`` group; carol is
MLEngineer on the ``teams/fraud`` OU and in the ``release`` group; admin is OrgAdmin on
the root. The guardrail on ``teams/fraud/prod`` lets only ``release`` delete endpoints
there, overriding admin's OrgAdmin allow. Runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import cedarpy
import pytest

from ketch import iam, org
from ketch.iam import Action, Authorizer, Caller, RequestFacts, ResourceRef
from ketch.iam.authorizer import request_context
from ketch.iam.engine import CompiledPolicies, Decision
from ketch.schemas.org import AccountCreate, AccountUpdate, Stage
from ketch.store.session import UnitOfWorkFactory

DESCRIBE, TRAIN, DEPLOY, DELETE, APPROVE = (
    Action.DESCRIBE_ACCOUNT,
    Action.CREATE_TRAINING_JOB,
    Action.CREATE_ENDPOINT,
    Action.DELETE_ENDPOINT,
    Action.APPROVE_MODEL_VERSION,
)
ACTIONS = (DESCRIBE, TRAIN, DEPLOY, DELETE, APPROVE)
ACCOUNTS = ("fraud-dev", "fraud-prod", "churn-dev")
PASSWORD = "Correct-Horse-9-battery"

# principal -> account -> the actions allowed there (every other cell is a deny)
EXPECTED: dict[str, dict[str, set[Action]]] = {
    "admin": {
        "fraud-dev": set(ACTIONS),
        "fraud-prod": set(ACTIONS) - {DELETE},  # the guardrail beats OrgAdmin
        "churn-dev": set(ACTIONS),
    },
    "alice": {
        "fraud-dev": {DESCRIBE, TRAIN, DEPLOY, DELETE},
        "fraud-prod": {DESCRIBE},
        "churn-dev": set(),
    },
    "bob": {
        "fraud-dev": set(),
        "fraud-prod": set(),
        "churn-dev": {DESCRIBE, TRAIN, DEPLOY, DELETE},
    },
    "carol": {
        "fraud-dev": {DESCRIBE, DEPLOY, DELETE, APPROVE},
        "fraud-prod": {DESCRIBE, DEPLOY, DELETE, APPROVE},
        "churn-dev": set(),
    },
}

RESOURCE_TYPE = {
    DESCRIBE: "Account",
    TRAIN: "TrainingJob",
    DEPLOY: "Endpoint",
    DELETE: "Endpoint",
    APPROVE: "ModelVersion",
}


def build_organization(uow: UnitOfWorkFactory) -> None:
    with uow(write=True) as w:
        org.create_ou(w, name="platform", parent="", create_missing_parents=False)
        for path in ("teams/fraud/dev", "teams/fraud/prod", "teams/churn/dev"):
            org.create_ou(
                w,
                name=path.rsplit("/", 1)[1],
                parent=path.rsplit("/", 1)[0],
                create_missing_parents=True,
            )
        for account, path, stage in (
            ("fraud-dev", "teams/fraud/dev", Stage.DEV),
            ("fraud-prod", "teams/fraud/prod", Stage.PROD),
            ("churn-dev", "teams/churn/dev", Stage.DEV),
        ):
            org.create_account(w, AccountCreate(id=account, stage=stage, ou=path))
        for user in ("alice", "bob", "carol"):
            iam.create_user(w, name=user, password=PASSWORD)
        for group in ("churn-ds", "release"):
            iam.create_group(w, name=group)
        iam.add_group_member(w, "churn-ds", "bob")
        iam.add_group_member(w, "release", "carol")
        for permission_set, kind, principal, target_type, target in (
            ("DataScientist", "user", "alice", "account", "fraud-dev"),
            ("ReadOnly", "user", "alice", "account", "fraud-prod"),
            ("DataScientist", "group", "churn-ds", "account", "churn-dev"),
            ("MLEngineer", "user", "carol", "ou", "teams/fraud"),
        ):
            iam.create_assignment(
                w,
                permission_set=permission_set,
                principal_type=kind,
                principal=principal,
                target_type=target_type,
                target=target,
                created_by="admin",
            )
        iam.create_guardrail(
            w,
            name="prod-endpoint-deletes-by-release-only",
            ou="teams/fraud/prod",
            policy_text=iam.EXAMPLE_GUARDRAILS["prod-endpoint-deletes-by-release-only"],
        )


def decide(
    uow: UnitOfWorkFactory, authorizer: Authorizer, user: str, action: Action, account: str
) -> bool:
    resource_type = RESOURCE_TYPE[action]
    resource = (
        ResourceRef("Account", account)
        if resource_type == "Account"
        else ResourceRef(resource_type, f"krn:ketch:{account}:x/1", "Account", account)
    )
    with uow() as r:
        caller = Caller(user_id=iam.user_id_of(r, user), name=user)
        return authorizer.check(
            r, caller, action, resource, account=account, facts=RequestFacts()
        ).allowed


@pytest.fixture
def organization(uow: UnitOfWorkFactory) -> UnitOfWorkFactory:
    build_organization(uow)
    return uow


def test_every_cell_of_the_multi_team_organization(organization: UnitOfWorkFactory) -> None:
    authorizer = Authorizer()
    wrong = [
        (user, action.value, account, allowed)
        for user, by_account in EXPECTED.items()
        for account in ACCOUNTS
        for action in ACTIONS
        if (allowed := decide(organization, authorizer, user, action, account))
        != (action in by_account[account])
    ]
    assert wrong == []


def test_a_change_holds_from_the_very_next_decision(organization: UnitOfWorkFactory) -> None:
    authorizer = Authorizer()
    assert not decide(organization, authorizer, "bob", TRAIN, "fraud-dev")
    with organization(write=True) as w:
        iam.add_group_member(w, "churn-ds", "bob")  # already a member: no change
        iam.create_assignment(
            w,
            permission_set="DataScientist",
            principal_type="group",
            principal="churn-ds",
            target_type="account",
            target="fraud-dev",
            created_by="admin",
        )
    assert decide(organization, authorizer, "bob", TRAIN, "fraud-dev")
    with organization(write=True) as w:
        iam.remove_group_member(w, "churn-ds", "bob")
    assert not decide(organization, authorizer, "bob", TRAIN, "fraud-dev")
    # An org change (the account leaves carol's OU) holds from the next decision too.
    assert decide(organization, authorizer, "carol", DESCRIBE, "fraud-dev")
    with organization(write=True) as w:
        org.update_account(w, "fraud-dev", AccountUpdate(ou="teams/churn/dev"))
    assert not decide(organization, authorizer, "carol", DESCRIBE, "fraud-dev")


def test_sandbox_guardrail_limits_instance_size(organization: UnitOfWorkFactory) -> None:
    with organization(write=True) as w:
        org.create_account(w, AccountCreate(id="sandbox-1", stage=Stage.SANDBOX, ou="platform"))
        iam.create_guardrail(
            w,
            name="sandbox-instance-size-limit",
            ou="",
            policy_text=iam.EXAMPLE_GUARDRAILS["sandbox-instance-size-limit"],
        )
    authorizer = Authorizer()
    job = ResourceRef("TrainingJob", "krn:ketch:sandbox-1:training-job/x", "Account", "sandbox-1")
    with organization() as r:
        admin = Caller(user_id=iam.user_id_of(r, "admin"), name="admin")

        def allowed(instance_type: str, account: str = "sandbox-1") -> bool:
            target = ResourceRef(
                "TrainingJob", f"krn:ketch:{account}:training-job/x", "Account", account
            )
            return authorizer.check(
                r,
                admin,
                TRAIN,
                target if account != "sandbox-1" else job,
                account=account,
                facts=RequestFacts(instance_type=instance_type),
            ).allowed

        assert allowed("cpu.large")
        assert not allowed("cpu.xlarge")
        assert not allowed("some.unknown-type")  # unknown sizes count as the largest
        assert allowed("cpu.xlarge", account="fraud-dev")  # not a sandbox


def test_token_limits_and_self_escalation(organization: UnitOfWorkFactory) -> None:
    authorizer = Authorizer()
    with organization() as r:
        alice_id = iam.user_id_of(r, "alice")
        read_only = Caller(user_id=alice_id, name="alice", token_read_only=True)
        assert authorizer.check(
            r,
            read_only,
            DESCRIBE,
            ResourceRef("Account", "fraud-dev"),
            account="fraud-dev",
            facts=RequestFacts(),
        ).allowed
        job = ResourceRef(
            "TrainingJob", "krn:ketch:fraud-dev:training-job/x", "Account", "fraud-dev"
        )
        assert not authorizer.check(
            r, read_only, TRAIN, job, account="fraud-dev", facts=RequestFacts()
        ).allowed
        limited = Caller(user_id=alice_id, name="alice", token_accounts=("fraud-prod",))
        assert not authorizer.check(
            r, limited, TRAIN, job, account="fraud-dev", facts=RequestFacts()
        ).allowed
        admin = Caller(user_id=iam.user_id_of(r, "admin"), name="admin")
        group = ResourceRef("Group", "release")
        assert authorizer.check(
            r, admin, Action.ADD_GROUP_MEMBER, group, account=None, facts=RequestFacts()
        ).allowed
        decision = authorizer.check(
            r,
            admin,
            Action.ADD_GROUP_MEMBER,
            group,
            account=None,
            facts=RequestFacts(subject_is_caller=True),
        )
        assert not decision.allowed
        assert "system.no-self-escalation" in decision.policy_ids


def test_network_allow_list(organization: UnitOfWorkFactory) -> None:
    with organization(write=True) as w:
        iam.set_network_policy(w, ["10.8.0.0/16"])
    authorizer = Authorizer()
    with organization() as r:
        admin = Caller(user_id=iam.user_id_of(r, "admin"), name="admin")
        account = ResourceRef("Account", "fraud-dev")

        def from_address(address: str) -> bool:
            return authorizer.check(
                r,
                admin,
                DESCRIBE,
                account,
                account="fraud-dev",
                facts=RequestFacts(source_ip=address),
            ).allowed

        assert from_address("10.8.3.4")
        assert not from_address("127.0.0.1")
        assert not from_address("not-an-address")


SPECIAL_JOB = "krn:ketch:fraud-dev:training-job/special"


def _add_policies_that_name_resources(uow: UnitOfWorkFactory) -> None:
    """Policies that single out one training job or read entities off the request's path,
    an instance-size guardrail, a CIDR-bound set and an allow-list: what the engine's
    shortcuts must not decide differently."""
    with uow(write=True) as w:
        iam.create_permission_set(
            w,
            name="StopTheSpecialJob",
            policy_text=(
                "permit(principal in ?principal, "
                'action == Ketch::Action::"StopTrainingJob", resource in ?resource) '
                f'when {{ resource == Ketch::TrainingJob::"{SPECIAL_JOB}" }};'
            ),
            allowed_cidrs=["10.0.0.0/8"],
        )
        iam.create_assignment(
            w,
            permission_set="StopTheSpecialJob",
            principal_type="user",
            principal="bob",
            target_type="account",
            target="fraud-dev",
            created_by="admin",
        )
        # Reads entities off the request's path: another account, another user's groups.
        iam.create_permission_set(
            w,
            name="WhileProdIsProd",
            policy_text=(
                "permit(principal in ?principal, "
                'action == Ketch::Action::"DescribeTrainingJob", resource in ?resource) '
                'when { Ketch::Account::"fraud-prod".stage == "prod" && '
                'Ketch::User::"carol" in Ketch::Group::"release" };'
            ),
        )
        iam.create_assignment(
            w,
            permission_set="WhileProdIsProd",
            principal_type="user",
            principal="bob",
            target_type="account",
            target="fraud-dev",
            created_by="admin",
        )
        iam.create_guardrail(
            w,
            name="sandbox-instance-size-limit",
            ou="",
            policy_text=iam.EXAMPLE_GUARDRAILS["sandbox-instance-size-limit"],
        )
        iam.set_network_policy(w, ["10.0.0.0/8", "192.168.0.0/16"])


def _resources(
    compiled: CompiledPolicies, user: str, action: Action, account: str
) -> list[ResourceRef]:
    """Resources of ``action``'s type: stored entities, and new ones the entities lack."""
    kind = iam.ACTION_SPECS[action].resource_type
    snapshot = compiled.facts.org
    if kind == "Account":
        return [
            ResourceRef("Account", account),
            ResourceRef("Account", "new", "OU", snapshot.root_ou_id),
        ]
    if kind == "Organization":
        return [ResourceRef("Organization", snapshot.organization_id)]
    if kind == "OU":
        return [ResourceRef("OU", snapshot.accounts[account].ou_id)]
    if kind == "User":
        return [
            ResourceRef("User", user),
            ResourceRef("User", "bob" if user == "alice" else "alice"),
        ]
    if kind == "Group":
        return [
            ResourceRef("Group", "release"),
            ResourceRef("Group", "new", "OU", snapshot.root_ou_id),
        ]
    resources = [ResourceRef(kind, f"krn:ketch:{account}:{kind}/x", "Account", account)]
    if kind == "TrainingJob":
        resources.append(ResourceRef(kind, SPECIAL_JOB, "Account", account))
    return resources


CALLERS: dict[str, tuple[dict[str, Any], RequestFacts]] = {
    "plain": ({}, RequestFacts(source_ip="10.1.2.3")),
    "outside the allow-list": ({}, RequestFacts(source_ip="172.16.0.1")),
    "from another allowed range": ({}, RequestFacts(source_ip="192.168.1.1")),
    "read-only token": ({"token_read_only": True}, RequestFacts(source_ip="10.1.2.3")),
    "token limited to fraud-dev": (
        {"token_accounts": ("fraud-dev",)},
        RequestFacts(source_ip="10.1.2.3"),
    ),
    "changing itself": ({}, RequestFacts(source_ip="10.1.2.3", subject_is_caller=True)),
    "under the guardrail it edits": (
        {},
        RequestFacts(source_ip="10.1.2.3", guardrail_governs_caller=True),
    ),
    "asking for a big instance": (
        {},
        RequestFacts(source_ip="10.1.2.3", instance_type="gpu.large"),
    ),
}


def test_per_request_policy_sets_decide_as_the_whole_organisation(
    organization: UnitOfWorkFactory,
) -> None:
    """Every shortcut of the engine (a per-request policy set cut to the principal, the
    resource's path, the action and the system policies that may apply; a context cut to
    the attributes those policies read; an entity slice, or a stand-in for a new resource)
    decides every request exactly as Cedar does on the whole organisation's policies and
    entities with the whole context."""
    _add_policies_that_name_resources(organization)
    with organization() as r:
        compiled = Authorizer().compiled(r)
    whole = cedarpy.PolicySet.from_json_str(
        json.dumps(
            {
                "staticPolicies": compiled.static,
                "templates": compiled.templates,
                "templateLinks": [
                    *compiled.shared_links,
                    *(link for links in compiled.links_by_principal.values() for link in links),
                ],
            }
        )
    )
    outcomes: Counter[tuple[str, bool]] = Counter()
    for user in ("admin", "alice", "bob", "carol"):
        for label, (limits, facts) in CALLERS.items():
            caller = Caller(user_id=user, name=user, **limits)
            for account in ACCOUNTS:
                for action in Action:
                    for resource in _resources(compiled, user, action, account):
                        context = request_context(compiled, caller, account=account, facts=facts)
                        sliced = compiled.decide(
                            principal=user, action=action, resource=resource, context=context
                        )
                        reference = _decide_on_everything(
                            compiled, whole, user, action, resource, context
                        )
                        cell = (user, label, account, action.value, resource.id)
                        assert sliced.allowed == reference.allowed, cell
                        assert set(sliced.policy_ids) == set(reference.diagnostics.reasons), cell
                        assert bool(sliced.errors) == bool(reference.diagnostics.errors), cell
                        outcomes[(label, sliced.allowed)] += 1
    # Every other kind of caller met both answers, so the comparison covered both sides.
    assert outcomes[("outside the allow-list", True)] == 0
    assert all(
        outcomes[(label, True)] and outcomes[(label, False)]
        for label in CALLERS
        if label != "outside the allow-list"
    ), outcomes


def _decide_on_everything(
    compiled: CompiledPolicies,
    whole: cedarpy.PolicySet,
    user: str,
    action: Action,
    resource: ResourceRef,
    context: dict[str, Any],
) -> cedarpy.AuthzResult:
    entities = compiled.entities
    if (resource.type, resource.id) not in compiled.known:
        parents = (
            [{"type": f"Ketch::{resource.parent_type}", "id": resource.parent_id}]
            if resource.parent_type and resource.parent_id
            else []
        )
        entities = entities.with_added_json_str(
            json.dumps(
                [
                    {
                        "uid": {"type": f"Ketch::{resource.type}", "id": resource.id},
                        "attrs": {},
                        "parents": parents,
                    }
                ]
            )
        )
    return cedarpy.is_authorized(
        {
            "principal": {"type": "Ketch::User", "id": user},
            "action": {"type": "Ketch::Action", "id": action.value},
            "resource": {"type": f"Ketch::{resource.type}", "id": resource.id},
            "context": context,
        },
        whole,
        entities,
    )


def _bob_on_a_job(uow: UnitOfWorkFactory, action: Action, job: str) -> Decision:
    """bob's decision on a training job in fraud-dev, from inside the allow-list."""
    with uow() as r:
        bob = Caller(user_id=iam.user_id_of(r, "bob"), name="bob")
        return Authorizer().check(
            r,
            bob,
            action,
            ResourceRef("TrainingJob", job, "Account", "fraud-dev"),
            account="fraud-dev",
            facts=RequestFacts(source_ip="10.9.9.9"),
        )


def test_a_policy_naming_one_new_resource_sees_that_resource(
    organization: UnitOfWorkFactory,
) -> None:
    """A new training job is decided on a stand-in only while no policy names one."""
    _add_policies_that_name_resources(organization)

    def stop(job: str) -> bool:
        return _bob_on_a_job(organization, Action.STOP_TRAINING_JOB, job).allowed

    assert stop(SPECIAL_JOB)
    assert not stop("krn:ketch:fraud-dev:training-job/other")
    assert not stop("*")  # the stand-in's own id is nothing special


def test_a_policy_reading_entities_off_the_path_sees_them(
    organization: UnitOfWorkFactory,
) -> None:
    """The entity slice of a new resource holds the entities its policies name."""
    _add_policies_that_name_resources(organization)
    job = "krn:ketch:fraud-dev:training-job/x"
    decision = _bob_on_a_job(organization, Action.DESCRIBE_TRAINING_JOB, job)
    assert decision.allowed, decision
    assert decision.errors == ()
