"""The iam routes over HTTP: users, groups, tokens, permission sets, assignments,
guardrails, the network policy and the simulator, with the bad input of the issue."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from support.envelope import assert_envelope

Headers = dict[str, str]
PASSWORD = "Correct-Horse-9-battery"
API = "/api/v1"


def _ok(response, status: int = 200):  # type: ignore[no-untyped-def]
    assert response.status_code == status, response.text
    return response.json() if response.content else None


@pytest.fixture
def sign_in(http: TestClient, auth_headers: Headers) -> Callable[[str], Headers]:
    """Create user ``name`` (as the admin) and return headers carrying its token."""

    def make(name: str) -> Headers:
        _ok(
            http.post(
                f"{API}/users", json={"name": name, "password": PASSWORD}, headers=auth_headers
            ),
            201,
        )
        issued = _ok(http.post(f"{API}/auth/login", json={"username": name, "password": PASSWORD}))
        return {"Authorization": f"Bearer {issued['token']}"}

    return make


@pytest.fixture
def teams(http: TestClient, auth_headers: Headers) -> None:
    """OUs teams/fraud/{dev,prod}, accounts fraud-dev and fraud-prod, churn-dev."""
    for account, ou, stage in (
        ("fraud-dev", "teams/fraud/dev", "dev"),
        ("fraud-prod", "teams/fraud/prod", "prod"),
        ("churn-dev", "teams/churn", "dev"),
    ):
        body = {"id": account, "stage": stage, "ou": ou, "create_missing_ous": True}
        _ok(http.post(f"{API}/accounts", json=body, headers=auth_headers), 201)


def _assign(
    http: TestClient,
    headers: Headers,
    permission_set: str,
    principal: str,
    target: str,
    *,
    principal_type: str = "user",
    target_type: str = "account",
):  # type: ignore[no-untyped-def]
    body = {
        "permission_set": permission_set,
        "principal_type": principal_type,
        "principal": principal,
        "target_type": target_type,
        "target": target,
    }
    return http.post(f"{API}/assignments", json=body, headers=headers)


def _denials(http: TestClient, headers: Headers, action: str) -> list[dict[str, object]]:
    events = _ok(
        http.get(
            f"{API}/audit/events", params={"action": action, "outcome": "denied"}, headers=headers
        )
    )
    return list(events["items"])


# -- users and groups -------------------------------------------------------------------


def test_user_lifecycle(http: TestClient, auth_headers: Headers) -> None:
    user = _ok(
        http.post(
            f"{API}/users",
            json={"name": "alice", "password": PASSWORD, "display_name": "Alice"},
            headers=auth_headers,
        ),
        201,
    )
    assert user["krn"] == "krn:ketch::user/alice" and user["source"] == "local"
    assert "password" not in user and "password_hash" not in user
    names = [u["name"] for u in _ok(http.get(f"{API}/users", headers=auth_headers))["items"]]
    assert "alice" in names and "admin" in names
    updated = _ok(http.patch(f"{API}/users/alice", json={"disabled": True}, headers=auth_headers))
    assert updated["disabled"] is True
    login = http.post(f"{API}/auth/login", json={"username": "alice", "password": PASSWORD})
    assert_envelope(login, 401, "Unauthenticated")
    _ok(http.delete(f"{API}/users/alice", headers=auth_headers), 204)
    assert_envelope(http.get(f"{API}/users/alice", headers=auth_headers), 404, "NotFound")


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"name": "weak", "password": "short"}, "password"),
        ({"name": "x", "password": PASSWORD, "source": "sso"}, "source"),  # privileged field
        ({"name": "../etc", "password": PASSWORD}, "user name"),
    ],
)
def test_bad_user_input_changes_nothing(
    http: TestClient, auth_headers: Headers, body: dict[str, object], needle: str
) -> None:
    before = _ok(http.get(f"{API}/users", headers=auth_headers))["items"]
    error = assert_envelope(
        http.post(f"{API}/users", json=body, headers=auth_headers), 400, "ValidationError"
    )
    assert needle in error["message"]
    assert _ok(http.get(f"{API}/users", headers=auth_headers))["items"] == before


def test_an_admin_cannot_delete_itself(http: TestClient, auth_headers: Headers) -> None:
    error = assert_envelope(
        http.delete(f"{API}/users/admin", headers=auth_headers), 403, "AccessDenied"
    )
    assert "system.no-self-delete" in error["message"]
    [denial] = _denials(http, auth_headers, "DeleteUser")
    assert "system.no-self-delete" in denial["policy_ids"]
    assert _ok(http.get(f"{API}/users/admin", headers=auth_headers))["name"] == "admin"


def test_group_membership(
    http: TestClient, auth_headers: Headers, sign_in: Callable[[str], Headers]
) -> None:
    sign_in("alice")
    _ok(http.post(f"{API}/groups", json={"name": "fraud-ds"}, headers=auth_headers), 201)
    group = _ok(
        http.post(f"{API}/groups/fraud-ds/members", json={"user": "alice"}, headers=auth_headers)
    )
    assert group["members"] == ["alice"]
    assert _ok(http.get(f"{API}/users/alice", headers=auth_headers))["groups"] == ["fraud-ds"]
    group = _ok(http.delete(f"{API}/groups/fraud-ds/members/alice", headers=auth_headers))
    assert group["members"] == []
    missing = http.delete(f"{API}/groups/fraud-ds/members/alice", headers=auth_headers)
    assert_envelope(missing, 404, "NotFound")


# -- self-escalation ----------------------------------------------------------------------


def test_adding_oneself_to_a_group_is_refused_and_audited(
    http: TestClient, auth_headers: Headers
) -> None:
    _ok(http.post(f"{API}/groups", json={"name": "release"}, headers=auth_headers), 201)
    refused = http.post(
        f"{API}/groups/release/members", json={"user": "admin"}, headers=auth_headers
    )
    assert_envelope(refused, 403, "AccessDenied")
    assert _ok(http.get(f"{API}/groups/release", headers=auth_headers))["members"] == []
    [denial] = _denials(http, auth_headers, "AddGroupMember")
    assert denial["principal"] == "admin"
    assert "system.no-self-escalation" in denial["policy_ids"]


def test_assigning_oneself_or_ones_group_is_refused(
    http: TestClient, auth_headers: Headers, teams: None
) -> None:
    assert_envelope(
        _assign(http, auth_headers, "AccountAdmin", "admin", "fraud-dev"), 403, "AccessDenied"
    )
    _ok(http.post(f"{API}/groups", json={"name": "ops"}, headers=auth_headers), 201)
    _ok(http.post(f"{API}/groups/ops/members", json={"user": "bob-ops"}, headers=auth_headers), 404)
    # admin is not in "ops", so assigning to it is fine; joining it afterwards is not
    _ok(_assign(http, auth_headers, "ReadOnly", "ops", "fraud-dev", principal_type="group"), 201)
    assert len(_denials(http, auth_headers, "CreateAssignment")) == 1


def test_ou_admin_cannot_edit_guardrails_that_bind_itself(
    http: TestClient, auth_headers: Headers, teams: None, sign_in: Callable[[str], Headers]
) -> None:
    dave = sign_in("dave")
    _ok(_assign(http, auth_headers, "OrgAdmin", "dave", "teams/fraud", target_type="ou"), 201)
    body = {
        "name": "no-prod-deletes",
        "example": "prod-endpoint-deletes-by-release-only",
        "ou": "teams/fraud/prod",
    }
    assert_envelope(http.post(f"{API}/guardrails", json=body, headers=dave), 403, "AccessDenied")
    [denial] = _denials(http, auth_headers, "CreateGuardrail")
    assert "system.no-own-guardrail-edits" in denial["policy_ids"]
    # dave administers teams/fraud, so he may still manage its accounts' assignments
    sign_in("erin")
    _ok(_assign(http, dave, "DataScientist", "erin", "fraud-dev"), 201)
    # ... but not outside it: churn-dev is another team's account, hidden from dave
    assert_envelope(_assign(http, dave, "DataScientist", "erin", "churn-dev"), 404, "NotFound")
    # the organisation admin may attach the guardrail
    _ok(http.post(f"{API}/guardrails", json=body, headers=auth_headers), 201)


# -- tokens -----------------------------------------------------------------------------


def test_scoped_tokens(http: TestClient, auth_headers: Headers, teams: None) -> None:
    issued = _ok(
        http.post(f"{API}/tokens", json={"name": "ci", "read_only": True}, headers=auth_headers),
        201,
    )
    assert issued["prefix"] in issued["token"] and issued["read_only"] is True
    read_only = {"Authorization": f"Bearer {issued['token']}"}
    _ok(http.get(f"{API}/accounts/fraud-dev", headers=read_only))
    refused = http.patch(f"{API}/accounts/fraud-dev", json={"tags": {"a": "b"}}, headers=read_only)
    assert_envelope(refused, 403, "AccessDenied")
    limited_body = {"name": "fraud", "account_ids": ["fraud-dev"]}
    limited_token = _ok(http.post(f"{API}/tokens", json=limited_body, headers=auth_headers), 201)
    limited = {"Authorization": f"Bearer {limited_token['token']}"}
    _ok(http.get(f"{API}/accounts/fraud-dev", headers=limited))
    assert_envelope(http.get(f"{API}/accounts/churn-dev", headers=limited), 404, "NotFound")
    # a limited token cannot mint an unlimited one
    assert_envelope(
        http.post(f"{API}/tokens", json={"name": "x"}, headers=limited), 403, "AccessDenied"
    )
    listed = _ok(http.get(f"{API}/tokens", headers=auth_headers))["items"]
    assert {t["name"] for t in listed} >= {"ci", "fraud"}
    assert all("token" not in t and "secret_hash" not in t for t in listed)
    _ok(http.post(f"{API}/tokens/{issued['token_id']}/revoke", headers=auth_headers))
    assert_envelope(
        http.get(f"{API}/accounts/fraud-dev", headers=read_only), 401, "Unauthenticated"
    )
    unknown = http.post(
        f"{API}/tokens", json={"name": "x", "account_ids": ["nope-1"]}, headers=auth_headers
    )
    assert "nope-1" in assert_envelope(unknown, 400, "ValidationError")["message"]


def test_users_manage_only_their_own_tokens(
    http: TestClient, auth_headers: Headers, sign_in: Callable[[str], Headers]
) -> None:
    alice = sign_in("alice")
    mine = _ok(http.post(f"{API}/tokens", json={"name": "laptop"}, headers=alice), 201)
    assert [t["name"] for t in _ok(http.get(f"{API}/tokens", headers=alice))["items"]].count(
        "laptop"
    ) == 1
    assert_envelope(
        http.get(f"{API}/tokens", params={"user": "admin"}, headers=alice), 403, "AccessDenied"
    )
    admin_tokens = _ok(http.get(f"{API}/tokens", headers=auth_headers))["items"]
    stranger = http.post(f"{API}/tokens/{admin_tokens[0]['id']}/revoke", headers=alice)
    assert_envelope(stranger, 403, "AccessDenied")
    _ok(http.post(f"{API}/tokens/{mine['token_id']}/revoke", headers=alice))
    # the admin may list (and revoke) anybody's tokens
    assert _ok(http.get(f"{API}/tokens", params={"user": "alice"}, headers=auth_headers))["items"]


@pytest.mark.parametrize(
    "authorization",
    ["Bearer kt_malformed", "Bearer " + "k" * 5000, "Basic YWRtaW46eA==", "Bearer "],
)
def test_bad_tokens_are_401(http: TestClient, authorization: str) -> None:
    response = http.get(f"{API}/whoami", headers={"Authorization": authorization})
    assert_envelope(response, 401, "Unauthenticated")


def test_token_in_query_string_is_refused(http: TestClient, admin_token: str) -> None:
    response = http.get(f"{API}/whoami", params={"access_token": admin_token})
    assert "Authorization header" in assert_envelope(response, 401, "Unauthenticated")["message"]


# -- permission sets, assignments, guardrails -------------------------------------------


def test_custom_permission_set(
    http: TestClient, auth_headers: Headers, teams: None, sign_in: Callable[[str], Headers]
) -> None:
    text = (
        'permit(principal in ?principal, action == Ketch::Action::"DescribeAccount", '
        "resource in ?resource);"
    )
    created = _ok(
        http.post(
            f"{API}/permission-sets",
            json={"name": "Viewer", "policy_text": text},
            headers=auth_headers,
        ),
        201,
    )
    assert created["builtin"] is False
    names = {
        p["name"] for p in _ok(http.get(f"{API}/permission-sets", headers=auth_headers))["items"]
    }
    assert {
        "OrgAdmin",
        "AccountAdmin",
        "DataScientist",
        "MLEngineer",
        "ReadOnly",
        "Viewer",
    } <= names
    viewer = sign_in("vic")
    assert_envelope(http.get(f"{API}/accounts/fraud-dev", headers=viewer), 404, "NotFound")
    assignment = _ok(_assign(http, auth_headers, "Viewer", "vic", "fraud-dev"), 201)
    _ok(http.get(f"{API}/accounts/fraud-dev", headers=viewer))  # the very next request
    assert_envelope(
        http.delete(f"{API}/permission-sets/Viewer", headers=auth_headers), 409, "Conflict"
    )
    _ok(http.delete(f"{API}/assignments/{assignment['id']}", headers=auth_headers), 204)
    assert_envelope(http.get(f"{API}/accounts/fraud-dev", headers=viewer), 404, "NotFound")
    _ok(http.delete(f"{API}/permission-sets/Viewer", headers=auth_headers), 204)
    builtin = http.patch(
        f"{API}/permission-sets/ReadOnly", json={"description": "x"}, headers=auth_headers
    )
    assert "built-in" in assert_envelope(builtin, 400, "ValidationError")["message"]


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        (
            "permit(principal in ?principal, "
            'action == Ketch::Action::"LaunchRocket", resource in ?resource);',
            "LaunchRocket",
        ),
        (
            'permit(principal in ?principal, action, resource in Ketch::Spaceship::"x");',
            "Spaceship",
        ),
        ("this is not cedar", "Cedar"),
        ("forbid(principal in ?principal, action, resource in ?resource);", "permit"),
    ],
)
def test_invalid_permission_sets_are_rejected_clearly(
    http: TestClient, auth_headers: Headers, text: str, needle: str
) -> None:
    response = http.post(
        f"{API}/permission-sets", json={"name": "Bad", "policy_text": text}, headers=auth_headers
    )
    assert needle in assert_envelope(response, 400, "ValidationError")["message"]
    assert_envelope(http.get(f"{API}/permission-sets/Bad", headers=auth_headers), 404, "NotFound")


def test_guardrail_examples_and_bad_sources(
    http: TestClient, auth_headers: Headers, teams: None
) -> None:
    examples = _ok(http.get(f"{API}/guardrail-examples", headers=auth_headers))
    assert {e["name"] for e in examples} == {
        "prod-endpoint-deletes-by-release-only",
        "sandbox-instance-size-limit",
    }
    both = {
        "name": "g",
        "policy_text": "forbid(principal, action, resource in ?resource);",
        "example": "sandbox-instance-size-limit",
    }
    assert (
        "exactly one"
        in assert_envelope(
            http.post(f"{API}/guardrails", json=both, headers=auth_headers), 400, "ValidationError"
        )["message"]
    )
    unknown = {"name": "g", "example": "no-such-example"}
    assert (
        "sandbox-instance-size-limit"
        in assert_envelope(
            http.post(f"{API}/guardrails", json=unknown, headers=auth_headers),
            400,
            "ValidationError",
        )["message"]
    )
    permit = {"name": "g", "policy_text": "permit(principal, action, resource in ?resource);"}
    assert_envelope(
        http.post(f"{API}/guardrails", json=permit, headers=auth_headers), 400, "ValidationError"
    )
    created = _ok(
        http.post(
            f"{API}/guardrails",
            json={"name": "sandbox", "example": "sandbox-instance-size-limit", "ou": "teams"},
            headers=auth_headers,
        ),
        201,
    )
    assert created["ou"] == "teams"
    assert [
        g["name"] for g in _ok(http.get(f"{API}/guardrails", headers=auth_headers))["items"]
    ] == ["sandbox"]


def test_guardrail_overrides_an_org_admin_on_the_next_request(
    http: TestClient, auth_headers: Headers, teams: None
) -> None:
    text = 'forbid(principal, action == Ketch::Action::"CloseAccount", resource in ?resource);'
    body = {"name": "prod-accounts-stay-open", "policy_text": text, "ou": "teams/fraud/prod"}
    _ok(http.post(f"{API}/guardrails", json=body, headers=auth_headers), 201)
    refused = http.post(f"{API}/accounts/fraud-prod/close", headers=auth_headers)
    assert_envelope(refused, 403, "AccessDenied")
    assert _ok(http.get(f"{API}/accounts/fraud-prod", headers=auth_headers))["status"] == "active"
    _ok(http.post(f"{API}/accounts/fraud-dev/close", headers=auth_headers))  # not under the OU
    _ok(http.delete(f"{API}/guardrails/prod-accounts-stay-open", headers=auth_headers), 204)
    _ok(http.post(f"{API}/accounts/fraud-prod/close", headers=auth_headers))


def test_assignments_are_listed_only_where_visible(
    http: TestClient, auth_headers: Headers, teams: None, sign_in: Callable[[str], Headers]
) -> None:
    alice = sign_in("alice")
    sign_in("bob")
    _ok(_assign(http, auth_headers, "ReadOnly", "alice", "fraud-prod"), 201)
    _ok(_assign(http, auth_headers, "DataScientist", "bob", "churn-dev"), 201)
    seen = _ok(http.get(f"{API}/assignments", headers=alice))["items"]
    assert [(a["principal"], a["target"]) for a in seen] == [("alice", "fraud-prod")]
    everything = _ok(http.get(f"{API}/assignments", headers=auth_headers))["items"]
    assert {a["principal"] for a in everything} >= {"admin", "alice", "bob"}
    bobs = _ok(
        http.get(
            f"{API}/assignments",
            params={"principal_type": "user", "principal": "bob"},
            headers=auth_headers,
        )
    )["items"]
    assert [a["permission_set"] for a in bobs] == ["DataScientist"]


# -- network policy ------------------------------------------------------------------------


def test_network_policy(app: FastAPI, auth_headers: Headers) -> None:
    with TestClient(app, base_url="http://127.0.0.1", client=("10.8.1.2", 40000)) as vpn:
        lockout = vpn.put(
            f"{API}/network-policy",
            json={"allowed_cidrs": ["192.168.0.0/16"]},
            headers=auth_headers,
        )
        assert "lock you out" in assert_envelope(lockout, 400, "ValidationError")["message"]
        bad = vpn.put(
            f"{API}/network-policy", json={"allowed_cidrs": ["10.8.0.0/33"]}, headers=auth_headers
        )
        assert "CIDR" in assert_envelope(bad, 400, "ValidationError")["message"]
        policy = _ok(
            vpn.put(
                f"{API}/network-policy",
                json={"allowed_cidrs": ["10.8.0.0/16"]},
                headers=auth_headers,
            )
        )
        assert policy == {"allowed_cidrs": ["10.8.0.0/16"]}
        _ok(vpn.get(f"{API}/organization", headers=auth_headers))
    with TestClient(app, base_url="http://127.0.0.1", client=("203.0.113.9", 40000)) as outside:
        assert_envelope(
            outside.get(f"{API}/organization", headers=auth_headers), 403, "AccessDenied"
        )
    with TestClient(app, base_url="http://127.0.0.1", client=("10.8.1.2", 40000)) as vpn:
        _ok(vpn.put(f"{API}/network-policy", json={"allowed_cidrs": None}, headers=auth_headers))


# -- simulator ---------------------------------------------------------------------------------


def test_simulator_explains_decisions(
    http: TestClient, auth_headers: Headers, teams: None, sign_in: Callable[[str], Headers]
) -> None:
    sign_in("alice")
    _ok(_assign(http, auth_headers, "DataScientist", "alice", "fraud-dev"), 201)

    def simulate(**body: object) -> dict[str, object]:
        result: dict[str, object] = _ok(
            http.post(
                f"{API}/iam/simulate",
                json={"principal": "alice", "action": "CreateTrainingJob", **body},
                headers=auth_headers,
            )
        )
        return result

    allowed = simulate(resource="krn:ketch:fraud-dev:training-job/x")
    assert allowed["decision"] == "Allow"
    assert [p["name"] for p in allowed["deciding_policies"]] == ["DataScientist"]  # type: ignore[index]
    implicit = simulate(resource="krn:ketch:fraud-prod:training-job/x")
    assert implicit["decision"] == "Deny" and implicit["deciding_policies"] == []
    assert "implicitly" in str(implicit["explanation"])
    text = 'forbid(principal, action == Ketch::Action::"CreateTrainingJob", resource in ?resource);'
    _ok(
        http.post(
            f"{API}/guardrails",
            json={"name": "no-training", "policy_text": text, "ou": "teams/fraud"},
            headers=auth_headers,
        ),
        201,
    )
    explicit = simulate(resource="krn:ketch:fraud-dev:training-job/x")
    assert explicit["decision"] == "Deny"
    assert [(p["kind"], p["name"]) for p in explicit["deciding_policies"]] == [
        ("guardrail", "no-training")
    ]  # type: ignore[index]


@pytest.mark.parametrize(
    ("body", "status", "code", "needle"),
    [
        (
            {"action": "CreateTrainingJobs"},
            400,
            "ValidationError",
            "did you mean CreateTrainingJob",
        ),
        ({"resource": "arn:aws:s3:::bucket"}, 400, "ValidationError", "KRN"),
        ({"resource": "krn:ketch::training-job/x"}, 400, "ValidationError", "names its account"),
        ({"resource": "krn:ketch:nowhere:training-job/x"}, 404, "NotFound", "nowhere"),
        ({"principal": "ghost"}, 404, "NotFound", "ghost"),
        ({"action": "DescribeAccount"}, 400, "ValidationError", "acts on Account"),
    ],
)
def test_simulator_bad_input(
    http: TestClient,
    auth_headers: Headers,
    teams: None,
    body: dict[str, str],
    status: int,
    code: str,
    needle: str,
) -> None:
    request = {
        "principal": "admin",
        "action": "CreateTrainingJob",
        "resource": "krn:ketch:fraud-dev:training-job/x",
        **body,
    }
    response = http.post(f"{API}/iam/simulate", json=request, headers=auth_headers)
    assert needle in assert_envelope(response, status, code)["message"]


# -- transport refusals ------------------------------------------------------------------------


def test_foreign_origin_is_refused_and_audited(http: TestClient, auth_headers: Headers) -> None:
    headers = {**auth_headers, "Origin": "https://evil.example"}
    response = http.post(f"{API}/groups", json={"name": "evil"}, headers=headers)
    assert "cross-origin" in assert_envelope(response, 403, "AccessDenied")["message"]
    assert_envelope(http.get(f"{API}/groups/evil", headers=auth_headers), 404, "NotFound")
    assert len(_denials(http, auth_headers, "CreateGroup")) == 1
    same = {**auth_headers, "Origin": str(http.base_url).rstrip("/")}
    _ok(http.post(f"{API}/groups", json={"name": "fine"}, headers=same), 201)


def test_non_json_bodies_are_refused_and_audited(http: TestClient, auth_headers: Headers) -> None:
    headers = {**auth_headers, "Content-Type": "application/x-www-form-urlencoded"}
    response = http.post(f"{API}/groups", content=b"name=sneaky", headers=headers)
    assert "application/json" in assert_envelope(response, 415, "UnsupportedMediaType")["message"]
    assert_envelope(http.get(f"{API}/groups/sneaky", headers=auth_headers), 404, "NotFound")
    assert len(_denials(http, auth_headers, "CreateGroup")) == 1


@pytest.mark.parametrize(
    ("path", "create"),
    [
        ("/permission-sets", None),
        ("/tokens", lambda n: ("/tokens", {"name": f"t{n}"})),
        (
            "/guardrails",
            lambda n: ("/guardrails", {"name": f"g{n}", "example": "sandbox-instance-size-limit"}),
        ),
        (
            "/assignments",
            lambda n: (
                "/assignments",
                {
                    "permission_set": "ReadOnly",
                    "principal_type": "group",
                    "principal": f"grp{n}",
                    "target_type": "ou",
                    "target": "",
                },
            ),
        ),
    ],
)
def test_small_lists_page_too(
    http: TestClient,
    auth_headers: Headers,
    path: str,
    create: Callable[[int], tuple[str, dict[str, object]]] | None,
) -> None:
    for n in range(4):
        if create is not None:
            if path == "/assignments":
                _ok(http.post(f"{API}/groups", json={"name": f"grp{n}"}, headers=auth_headers), 201)
            route, body = create(n)
            _ok(http.post(f"{API}{route}", json=body, headers=auth_headers), 201)
    everything = [i["id"] for i in _ok(http.get(f"{API}{path}", headers=auth_headers))["items"]]
    seen: list[str] = []
    token = None
    while True:
        params: dict[str, object] = {"max_results": 2, **({"next_token": token} if token else {})}
        page = _ok(http.get(f"{API}{path}", params=params, headers=auth_headers))
        seen += [i["id"] for i in page["items"]]
        token = page["next_token"]
        if token is None:
            break
    assert seen == everything and len(everything) >= 4
    foreign = http.get(
        f"{API}{path}", params={"next_token": "eyJsIjoieCIsImsiOiJ5In0"}, headers=auth_headers
    )
    assert_envelope(foreign, 400, "ValidationError")


# -- references that a delete must not break --------------------------------------------


def test_an_ou_that_grants_or_guardrails_point_at_is_not_deleted(
    http: TestClient, auth_headers: Headers, sign_in: Callable[[str], Headers]
) -> None:
    """Deleting it would leave an assignment or a guardrail naming nothing, and every
    later decision (the admin's too) would fail on it."""
    ou = _ok(http.post(f"{API}/ous", json={"name": "short-lived"}, headers=auth_headers), 201)
    sign_in("frank")
    assignment = _ok(
        _assign(http, auth_headers, "OrgAdmin", "frank", "short-lived", target_type="ou"), 201
    )

    refused = http.delete(f"{API}/ous/{ou['id']}", headers=auth_headers)
    assert_envelope(refused, 409, "Conflict")
    assert "assignments" in refused.json()["error"]["message"]
    _ok(http.get(f"{API}/organization", headers=auth_headers))  # decisions still work

    _ok(http.delete(f"{API}/assignments/{assignment['id']}", headers=auth_headers), 204)
    body = {"name": "held", "example": "prod-endpoint-deletes-by-release-only", "ou": "short-lived"}
    _ok(http.post(f"{API}/guardrails", json=body, headers=auth_headers), 201)
    refused = http.delete(f"{API}/ous/{ou['id']}", headers=auth_headers)
    assert_envelope(refused, 409, "Conflict")
    assert "guardrail 'held'" in refused.json()["error"]["message"]

    _ok(http.delete(f"{API}/guardrails/held", headers=auth_headers), 204)
    _ok(http.delete(f"{API}/ous/{ou['id']}", headers=auth_headers), 204)
    _ok(http.get(f"{API}/organization", headers=auth_headers))


# -- moves and stage changes that would escape a guardrail ------------------------------


@pytest.fixture
def sandboxed(
    http: TestClient, auth_headers: Headers, sign_in: Callable[[str], Headers]
) -> Headers:
    """Account sbx (stage sandbox) in OU sandbox under two guardrails; dave is its
    AccountAdmin. Returns dave's headers."""
    body = {"id": "sbx", "stage": "sandbox", "ou": "sandbox", "create_missing_ous": True}
    _ok(http.post(f"{API}/accounts", json=body, headers=auth_headers), 201)
    _ok(http.post(f"{API}/ous", json={"name": "elsewhere"}, headers=auth_headers), 201)
    dave = sign_in("dave")
    _ok(_assign(http, auth_headers, "AccountAdmin", "dave", "sbx"), 201)
    no_close = 'forbid(principal, action == Ketch::Action::"CloseAccount", resource in ?resource);'
    for guardrail in (
        {"name": "no-close", "policy_text": no_close, "ou": "sandbox"},
        {"name": "size", "example": "sandbox-instance-size-limit", "ou": "sandbox"},
    ):
        _ok(http.post(f"{API}/guardrails", json=guardrail, headers=auth_headers), 201)
    return dave


@pytest.mark.parametrize(
    "change", [{"stage": "dev"}, {"ou": ""}, {"ou": "elsewhere"}, {"ou": "", "stage": "dev"}]
)
def test_an_account_admin_cannot_move_or_restage_an_account_out_from_under_its_guardrails(
    http: TestClient, auth_headers: Headers, sandboxed: Headers, change: dict[str, str]
) -> None:
    refused = http.patch(f"{API}/accounts/sbx", json=change, headers=sandboxed)

    assert_envelope(refused, 403, "AccessDenied")
    account = _ok(http.get(f"{API}/accounts/sbx", headers=auth_headers))
    assert (account["stage"], account["ou_path"]) == ("sandbox", "sandbox")
    assert_envelope(http.post(f"{API}/accounts/sbx/close", headers=sandboxed), 403, "AccessDenied")
    # what does not touch a guardrail stays the account admin's to change
    _ok(http.patch(f"{API}/accounts/sbx", json={"display_name": "Sandbox"}, headers=sandboxed))
    # the organisation admin may move it
    _ok(http.patch(f"{API}/accounts/sbx", json=change, headers=auth_headers))


def test_an_ou_admin_cannot_move_their_ou_out_from_under_a_guardrail_above_it(
    http: TestClient, auth_headers: Headers, teams: None, sign_in: Callable[[str], Headers]
) -> None:
    no_close = 'forbid(principal, action == Ketch::Action::"CloseAccount", resource in ?resource);'
    guardrail = {"name": "teams-keep-accounts", "policy_text": no_close, "ou": "teams"}
    _ok(http.post(f"{API}/guardrails", json=guardrail, headers=auth_headers), 201)
    dave = sign_in("dave")
    _ok(_assign(http, auth_headers, "OrgAdmin", "dave", "teams/fraud", target_type="ou"), 201)
    fraud = _ok(http.get(f"{API}/ous", params={"path": "teams/fraud"}, headers=auth_headers))
    fraud_id = fraud["items"][0]["id"]

    refused = http.patch(f"{API}/ous/{fraud_id}", json={"parent": ""}, headers=dave)

    assert_envelope(refused, 403, "AccessDenied")
    assert _ok(http.get(f"{API}/ous/{fraud_id}", headers=auth_headers))["path"] == "teams/fraud"
    assert_envelope(http.post(f"{API}/accounts/fraud-dev/close", headers=dave), 403, "AccessDenied")
    # within the guardrail's reach, the OU admin may still reorganise their own OUs
    _ok(http.patch(f"{API}/ous/{fraud_id}", json={"name": "fraud-team"}, headers=dave))


def test_moving_an_account_needs_the_right_to_place_one_at_the_destination(
    http: TestClient, auth_headers: Headers, teams: None, sign_in: Callable[[str], Headers]
) -> None:
    """dave administers teams/fraud only: he may not push its account into churn's OU."""
    dave = sign_in("dave")
    _ok(_assign(http, auth_headers, "OrgAdmin", "dave", "teams/fraud", target_type="ou"), 201)

    refused = http.patch(f"{API}/accounts/fraud-dev", json={"ou": "teams/churn"}, headers=dave)

    assert_envelope(refused, 403, "AccessDenied")
    assert "CreateAccount" in refused.json()["error"]["message"]
    account = _ok(http.get(f"{API}/accounts/fraud-dev", headers=auth_headers))
    assert account["ou_path"] == "teams/fraud/dev"
    _ok(http.patch(f"{API}/accounts/fraud-dev", json={"ou": "teams/fraud/prod"}, headers=dave))
