"""``client.permission_sets``, ``client.assignments``, ``client.guardrails``,
``client.network_policy`` and ``client.iam.simulate`` against the in-process app."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest
from fastapi.testclient import TestClient

import ketch

PASSWORD = "Correct-Horse-9-battery"
TRAIN = 'Ketch::Action::"CreateTrainingJob"'
TRAINER_POLICY = f"permit(principal in ?principal, action == {TRAIN}, resource in ?resource);"
NO_TRAINING = f"forbid(principal, action == {TRAIN}, resource in ?resource);"
JOB = "krn:ketch:fraud-dev:training-job/x"
BUILTIN_SETS = ["AccountAdmin", "DataScientist", "MLEngineer", "OrgAdmin", "ReadOnly"]


@pytest.fixture
def sent(http: TestClient) -> Iterator[list[httpx.Request]]:
    """Every request the SDK sends from now on (an httpx event hook)."""
    requests: list[httpx.Request] = []
    http.event_hooks["request"].append(requests.append)
    yield requests
    http.event_hooks["request"].remove(requests.append)


@pytest.fixture
def fraud(client: ketch.Client) -> ketch.Client:
    """Account fraud-dev in OU teams/fraud, and user alice with no assignment yet."""
    client.accounts.create("fraud-dev", stage="dev", ou="teams/fraud", create_missing_ous=True)
    client.users.create("alice", password=PASSWORD)
    return client


def _decision(client: ketch.Client, principal: str = "alice", **request: str) -> str:
    request = {"action": "CreateTrainingJob", "resource": JOB, **request}
    return client.iam.simulate(principal=principal, **request).decision


# -- permission sets -----------------------------------------------------------------


def test_create_get_and_list_permission_sets(client: ketch.Client) -> None:
    created = client.permission_sets.create(
        "Trainer", policy_text=TRAINER_POLICY, description="run training jobs"
    )

    assert (created.krn, created.builtin, created.allowed_cidrs) == (
        "krn:ketch::permission-set/Trainer",
        False,
        None,
    )
    assert created.policy_text == TRAINER_POLICY
    assert client.permission_sets.get("Trainer") == created
    assert [p.name for p in client.permission_sets.iter_all()] == sorted([*BUILTIN_SETS, "Trainer"])
    assert client.permission_sets.get("OrgAdmin").builtin is True
    with pytest.raises(ketch.Conflict, match="permission set 'Trainer' already exists"):
        client.permission_sets.create("Trainer", policy_text=TRAINER_POLICY)


def test_invalid_cedar_is_refused_with_cedars_message(client: ketch.Client) -> None:
    with pytest.raises(ketch.InvalidInput) as syntax:
        client.permission_sets.create("Broken", policy_text="permit(principal, action, resource")
    assert syntax.value.message.startswith("permission set policy is not valid Cedar: ")
    assert syntax.value.status_code == 400  # type: ignore[attr-defined]  # the server said so

    unknown = TRAINER_POLICY.replace("CreateTrainingJob", "LaunchRocket")
    with pytest.raises(ketch.InvalidInput) as schema:
        client.permission_sets.create("Rocket", policy_text=unknown)
    assert "does not validate against ketch's Cedar schema" in schema.value.message
    assert "LaunchRocket" in schema.value.message

    with pytest.raises(ketch.InvalidInput, match="put forbid rules in a guardrail"):
        client.permission_sets.create(
            "Forbids", policy_text=NO_TRAINING.replace("principal,", "principal in ?principal,")
        )
    with pytest.raises(ketch.InvalidInput, match="found a policy without slots"):
        client.permission_sets.create("Static", policy_text="permit(principal, action, resource);")
    assert [p.name for p in client.permission_sets.iter_all()] == BUILTIN_SETS


def test_empty_policy_text_fails_before_sending(
    client: ketch.Client, sent: list[httpx.Request]
) -> None:
    with pytest.raises(ketch.InvalidInput, match="policy_text: String should have at least 1"):
        client.permission_sets.create("Empty", policy_text="")
    with pytest.raises(ketch.InvalidInput, match="give allowed_cidrs or clear_allowed_cidrs"):
        client.permission_sets.update("X", allowed_cidrs=["10.0.0.0/8"], clear_allowed_cidrs=True)
    assert sent == []


def test_update_sets_and_lifts_the_address_limit(client: ketch.Client) -> None:
    client.permission_sets.create("Trainer", policy_text=TRAINER_POLICY, description="v1")

    limited = client.permission_sets.update("Trainer", allowed_cidrs=["10.8.0.0/16"])
    assert (limited.allowed_cidrs, limited.description) == (["10.8.0.0/16"], "v1")
    described = client.permission_sets.update("Trainer", description="v2")
    assert (described.allowed_cidrs, described.description) == (["10.8.0.0/16"], "v2")
    lifted = client.permission_sets.update("Trainer", clear_allowed_cidrs=True)
    assert lifted.allowed_cidrs is None

    with pytest.raises(ketch.InvalidInput, match="use CIDR notation"):
        client.permission_sets.update("Trainer", allowed_cidrs=["not-a-range"])
    with pytest.raises(ketch.InvalidInput, match="is not valid Cedar"):
        client.permission_sets.update("Trainer", policy_text="permit(")
    assert client.permission_sets.get("Trainer").policy_text == TRAINER_POLICY


def test_built_in_sets_stay_and_assigned_sets_cannot_go(fraud: ketch.Client) -> None:
    client = fraud
    with pytest.raises(ketch.InvalidInput, match="'ReadOnly' is a built-in permission set"):
        client.permission_sets.update("ReadOnly", description="mine now")
    with pytest.raises(ketch.InvalidInput, match="cannot be deleted"):
        client.permission_sets.delete("ReadOnly")
    client.permission_sets.create("Trainer", policy_text=TRAINER_POLICY)
    assignment = client.assignments.create(
        permission_set="Trainer",
        principal_type="user",
        principal="alice",
        target_type="account",
        target="fraud-dev",
    )
    with pytest.raises(ketch.Conflict, match="still assigned"):
        client.permission_sets.delete("Trainer")

    client.assignments.delete(assignment.id)
    client.permission_sets.delete("Trainer")
    with pytest.raises(ketch.NotFound, match="permission set 'Trainer' does not exist"):
        client.permission_sets.get("Trainer")


# -- assignments ---------------------------------------------------------------------


def test_an_assignment_grants_and_its_deletion_revokes(fraud: ketch.Client) -> None:
    client = fraud
    client.permission_sets.create("Trainer", policy_text=TRAINER_POLICY)
    assert _decision(client) == "Deny"

    assignment = client.assignments.create(
        permission_set="Trainer",
        principal_type="user",
        principal="alice",
        target_type="account",
        target="fraud-dev",
    )

    assert (assignment.permission_set, assignment.principal, assignment.target) == (
        "Trainer",
        "alice",
        "fraud-dev",
    )
    assert assignment.created_by == "admin"
    assert client.assignments.get(assignment.id) == assignment
    assert _decision(client) == "Allow"
    with pytest.raises(ketch.Conflict, match="this assignment already exists"):
        client.assignments.create(
            permission_set="Trainer",
            principal_type="user",
            principal="alice",
            target_type="account",
            target="fraud-dev",
        )

    client.assignments.delete(assignment.id)
    assert _decision(client) == "Deny"
    with pytest.raises(ketch.NotFound, match=f"assignment '{assignment.id}' does not exist"):
        client.assignments.get(assignment.id)


def test_group_assignments_on_an_ou_and_the_list_filter(fraud: ketch.Client) -> None:
    client = fraud
    client.groups.create("fraud-ds")
    client.groups.add_member("fraud-ds", "alice")
    on_ou = client.assignments.create(
        permission_set="DataScientist",
        principal_type="group",
        principal="fraud-ds",
        target_type="ou",
        target="teams/fraud",
    )
    assert (on_ou.target_type, on_ou.target) == ("ou", "teams/fraud")
    assert _decision(client) == "Allow"  # through the group, on an account below the OU

    def listed(**filters: str) -> list[str]:
        return [a.principal for a in client.assignments.iter_all(**filters)]

    assert listed() == ["admin", "fraud-ds"]
    assert listed(principal_type="group", principal="fraud-ds") == ["fraud-ds"]
    assert listed(principal_type="user", principal="alice") == []  # direct ones only
    with pytest.raises(ketch.InvalidInput, match="give principal_type and principal together"):
        client.assignments.list(principal_type="user")
    with pytest.raises(ketch.NotFound, match="group 'nobody' does not exist"):
        client.assignments.list(principal_type="group", principal="nobody")


def test_an_assignment_checks_its_parts(fraud: ketch.Client, sent: list[httpx.Request]) -> None:
    client = fraud

    def assign(**changes: str) -> None:
        fields = {
            "permission_set": "ReadOnly",
            "principal_type": "user",
            "principal": "alice",
            "target_type": "account",
            "target": "fraud-dev",
            **changes,
        }
        client.assignments.create(**fields)

    with pytest.raises(ketch.InvalidInput, match="principal_type: Input should be 'user' or"):
        assign(principal_type="robot")
    with pytest.raises(ketch.InvalidInput, match="target_type: Input should be 'account' or"):
        assign(target_type="region")
    assert sent == []
    with pytest.raises(ketch.NotFound, match="permission set 'Nope' does not exist"):
        assign(permission_set="Nope")
    with pytest.raises(ketch.NotFound, match="user 'carol' does not exist"):
        assign(principal="carol")
    with pytest.raises(ketch.NotFound, match="account 'nope-acct' does not exist"):
        assign(target="nope-acct")
    with pytest.raises(ketch.NotFound, match="does not exist"):
        assign(target_type="ou", target="teams/nowhere")


# -- guardrails ----------------------------------------------------------------------


def test_a_guardrail_beats_every_assignment_below_its_ou(fraud: ketch.Client) -> None:
    client = fraud
    assert _decision(client, "admin") == "Allow"

    guardrail = client.guardrails.create(
        "no-training", policy_text=NO_TRAINING, ou="teams/fraud", description="budget"
    )

    assert (guardrail.krn, guardrail.ou, guardrail.description) == (
        "krn:ketch::guardrail/no-training",
        "teams/fraud",
        "budget",
    )
    result = client.iam.simulate(principal="admin", action="CreateTrainingJob", resource=JOB)
    assert result.decision == "Deny"
    assert [(p.kind, p.name) for p in result.deciding_policies] == [("guardrail", "no-training")]
    assert client.guardrails.get("no-training") == guardrail
    assert [g.name for g in client.guardrails.iter_all()] == ["no-training"]

    client.guardrails.delete("no-training")
    assert _decision(client, "admin") == "Allow"
    with pytest.raises(ketch.NotFound, match="guardrail 'no-training' does not exist"):
        client.guardrails.get("no-training")


def test_guardrails_from_the_shipped_examples(client: ketch.Client) -> None:
    examples = {e.name: e.policy_text for e in client.guardrails.examples()}
    assert set(examples) == {"prod-endpoint-deletes-by-release-only", "sandbox-instance-size-limit"}

    created = client.guardrails.create("sandbox-size", example="sandbox-instance-size-limit")

    assert (created.ou, created.policy_text) == ("", examples["sandbox-instance-size-limit"])
    with pytest.raises(ketch.InvalidInput) as unknown:
        client.guardrails.create("other", example="no-such-example")
    assert (
        "no example guardrail 'no-such-example'; examples: prod-endpoint" in unknown.value.message
    )


def test_a_guardrail_needs_exactly_one_source(
    client: ketch.Client, http: TestClient, admin_token: str, sent: list[httpx.Request]
) -> None:
    with pytest.raises(ketch.InvalidInput) as neither:
        client.guardrails.create("g")
    with pytest.raises(ketch.InvalidInput) as both:
        client.guardrails.create(
            "g", policy_text=NO_TRAINING, example="sandbox-instance-size-limit"
        )
    assert sent == []

    server = http.post(
        "/api/v1/guardrails",
        json={"name": "g"},
        headers={"Authorization": f"Bearer {admin_token}"},
    )
    assert server.status_code == 400
    assert neither.value.message == server.json()["error"]["message"]
    assert both.value.message == neither.value.message
    assert "give exactly one of policy_text and example" in neither.value.message


def test_guardrail_text_is_checked(client: ketch.Client) -> None:
    with pytest.raises(ketch.InvalidInput, match="a guardrail only forbids"):
        client.guardrails.create("g", policy_text=TRAINER_POLICY.replace(" in ?principal", ""))
    with pytest.raises(ketch.InvalidInput, match="guardrail policy is not valid Cedar"):
        client.guardrails.create("g", policy_text="forbid(")
    with pytest.raises(ketch.NotFound, match="does not exist"):
        client.guardrails.create("g", policy_text=NO_TRAINING, ou="teams/nowhere")
    assert client.guardrails.list().items == []

    client.guardrails.create("g", policy_text=NO_TRAINING)
    wider = NO_TRAINING.replace("action ==", "action in [").replace(", resource", "], resource")
    updated = client.guardrails.update("g", policy_text=wider, description="now a list")
    assert (updated.policy_text, updated.description) == (wider, "now a list")
    with pytest.raises(ketch.InvalidInput, match=r"must not use \?principal"):
        client.guardrails.update(
            "g", policy_text=NO_TRAINING.replace("principal,", "principal in ?principal,")
        )
    assert client.guardrails.get("g").policy_text == wider


# -- network policy and simulator ----------------------------------------------------


def test_the_network_policy_denies_other_addresses(
    fraud: ketch.Client, client_from: Callable[[str], ketch.Client]
) -> None:
    office = client_from("10.8.0.5")
    assert office.network_policy.get().allowed_cidrs is None

    policy = office.network_policy.set(["10.8.0.0/16", "192.168.0.0/24"])

    assert policy.allowed_cidrs == ["10.8.0.0/16", "192.168.0.0/24"]
    assert office.network_policy.get() == policy
    with pytest.raises(ketch.Forbidden):
        client_from("192.0.2.7").whoami()
    outside = office.iam.simulate(
        principal="admin", action="CreateTrainingJob", resource=JOB, source_ip="192.0.2.7"
    )
    assert outside.decision == "Deny"
    assert outside.deciding_policies, outside.explanation
    assert _decision(office, "admin", source_ip="10.8.3.4") == "Allow"

    assert office.network_policy.clear().allowed_cidrs is None
    assert client_from("192.0.2.7").whoami().principal.name == "admin"
    assert _decision(office, "admin", source_ip="192.0.2.7") == "Allow"


def test_a_network_policy_that_would_lock_you_out_is_refused(
    client_from: Callable[[str], ketch.Client],
) -> None:
    office = client_from("10.8.0.5")
    with pytest.raises(ketch.InvalidInput, match=r"would lock you out: your address 10\.8\.0\.5 "):
        office.network_policy.set(["192.168.0.0/24"])
    with pytest.raises(ketch.InvalidInput, match="'nope' is not an address range"):
        office.network_policy.set(["10.8.0.0/16", "nope"])
    with pytest.raises(ketch.InvalidInput, match="would lock you out"):
        office.network_policy.set([])
    assert office.network_policy.get().allowed_cidrs is None


def test_simulate_explains_allow_and_deny(fraud: ketch.Client) -> None:
    client = fraud
    denied = client.iam.simulate(principal="alice", action="CreateTrainingJob", resource=JOB)
    assert (denied.decision, denied.deciding_policies, denied.errors) == ("Deny", [], [])
    assert "no permission set assigned to alice allows this" in denied.explanation

    allowed = client.iam.simulate(principal="admin", action="CreateTrainingJob", resource=JOB)
    assert allowed.decision == "Allow"
    assert [(p.kind, p.name) for p in allowed.deciding_policies] == [("permission-set", "OrgAdmin")]
    assert allowed.explanation == "Allowed by 1 permit policy."


def test_simulate_refuses_what_it_cannot_decide(fraud: ketch.Client) -> None:
    client = fraud
    with pytest.raises(ketch.InvalidInput, match="did you mean CreateTrainingJob"):
        client.iam.simulate(principal="alice", action="CreateTrainingJb", resource=JOB)
    with pytest.raises(ketch.NotFound, match="user 'nobody' does not exist"):
        client.iam.simulate(principal="nobody", action="CreateTrainingJob", resource=JOB)
    with pytest.raises(ketch.NotFound, match="account 'nope-acct' does not exist"):
        client.iam.simulate(
            principal="alice",
            action="CreateTrainingJob",
            resource="krn:ketch:nope-acct:training-job/x",
        )
    with pytest.raises(ketch.InvalidInput, match="resource: String should have at least 1"):
        client.iam.simulate(principal="alice", action="CreateTrainingJob", resource="")
