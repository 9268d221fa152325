"""The multi-team organisation of the acceptance criteria, over HTTP.

Built through the API itself: OUs ``platform``, ``teams/fraud/{dev,prod}``,
``teams/churn/dev``; accounts ``fraud-dev``, ``fraud-prod``, ``churn-dev``; alice is
DataScientist in fraud-dev and ReadOnly in fraud-prod; bob is DataScientist in
churn-dev through the ``churn-ds`` group; carol is MLEngineer on the ``teams/fraud`` OU;
admin is OrgAdmin on the root. A guardrail on ``teams/fraud/prod`` keeps its accounts
open, even for admin.

Every principal x route x account cell is checked against the expected status: the
routes that exist today act on accounts; the actions of later services (jobs,
endpoints, approvals) are checked cell by cell through the policy simulator, which
decides them on the same compiled policies the routes use.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from ketch.api import create_app
from ketch.server.bootstrap import bootstrap
from ketch.server.context import build_context
from support.envelope import assert_envelope
from support.settings import TEST_HOST, make_settings

API = "/api/v1"
PASSWORD = "Correct-Horse-9-battery"
ACCOUNTS = ("fraud-dev", "fraud-prod", "churn-dev")
PRINCIPALS = ("admin", "alice", "bob", "carol")
GUARDRAIL = 'forbid(principal, action == Ketch::Action::"CloseAccount", resource in ?resource);'


@dataclass
class Organization:
    http: TestClient
    headers: dict[str, dict[str, str]]
    token_ids: dict[str, str]


def _ok(response, status: int = 200):  # type: ignore[no-untyped-def]
    assert response.status_code == status, response.text
    return response.json() if response.content else None


@pytest.fixture(scope="module")
def organization(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Organization]:
    """Built once for the module: the cells only read, or write what they may repeat."""
    folder = tmp_path_factory.mktemp("multi-team")
    context = build_context(make_settings(folder / "home", f"sqlite:///{folder / 'ketch.db'}"))
    try:
        admin = bootstrap(context)
        assert admin is not None
        app: FastAPI = create_app(context)
        with TestClient(app, base_url=f"http://{TEST_HOST}", raise_server_exceptions=False) as http:
            yield _build(http, admin.token)
    finally:
        context.close()


def _build(http: TestClient, admin_token: str) -> Organization:
    root = {"Authorization": f"Bearer {admin_token}"}
    _ok(http.post(f"{API}/ous", json={"name": "platform"}, headers=root), 201)
    for account, ou, stage in (
        ("fraud-dev", "teams/fraud/dev", "dev"),
        ("fraud-prod", "teams/fraud/prod", "prod"),
        ("churn-dev", "teams/churn/dev", "dev"),
    ):
        body = {"id": account, "stage": stage, "ou": ou, "create_missing_ous": True}
        _ok(http.post(f"{API}/accounts", json=body, headers=root), 201)
    headers = {"admin": root}
    token_ids = {}
    for name in PRINCIPALS[1:]:
        _ok(http.post(f"{API}/users", json={"name": name, "password": PASSWORD}, headers=root), 201)
        issued = _ok(http.post(f"{API}/auth/login", json={"username": name, "password": PASSWORD}))
        headers[name] = {"Authorization": f"Bearer {issued['token']}"}
        token_ids[name] = issued["token_id"]
    _ok(http.post(f"{API}/groups", json={"name": "churn-ds"}, headers=root), 201)
    _ok(http.post(f"{API}/groups/churn-ds/members", json={"user": "bob"}, headers=root))
    for permission_set, kind, principal, target_type, target in (
        ("DataScientist", "user", "alice", "account", "fraud-dev"),
        ("ReadOnly", "user", "alice", "account", "fraud-prod"),
        ("DataScientist", "group", "churn-ds", "account", "churn-dev"),
        ("MLEngineer", "user", "carol", "ou", "teams/fraud"),
    ):
        body = {
            "permission_set": permission_set,
            "principal_type": kind,
            "principal": principal,
            "target_type": target_type,
            "target": target,
        }
        _ok(http.post(f"{API}/assignments", json=body, headers=root), 201)
    guardrail = {"name": "prod-stays-open", "policy_text": GUARDRAIL, "ou": "teams/fraud/prod"}
    _ok(http.post(f"{API}/guardrails", json=guardrail, headers=root), 201)
    return Organization(http, headers, token_ids)


# principal -> account -> status of GET /accounts/{account}
DESCRIBE = {
    "admin": {"fraud-dev": 200, "fraud-prod": 200, "churn-dev": 200},
    "alice": {"fraud-dev": 200, "fraud-prod": 200, "churn-dev": 404},
    "bob": {"fraud-dev": 404, "fraud-prod": 404, "churn-dev": 200},
    "carol": {"fraud-dev": 200, "fraud-prod": 200, "churn-dev": 404},
}
# ... of PATCH /accounts/{account} (nobody but admin may; hidden accounts stay hidden)
UPDATE = {
    "admin": {"fraud-dev": 200, "fraud-prod": 200, "churn-dev": 200},
    "alice": {"fraud-dev": 403, "fraud-prod": 403, "churn-dev": 404},
    "bob": {"fraud-dev": 404, "fraud-prod": 404, "churn-dev": 403},
    "carol": {"fraud-dev": 403, "fraud-prod": 403, "churn-dev": 404},
}
# ... of POST /accounts/{account}/close on fraud-prod: the guardrail beats OrgAdmin
CLOSE_PROD = {"admin": 403, "alice": 403, "bob": 404, "carol": 403}

# principal -> account -> actions of later services the simulator must allow
TRAIN, DEPLOY, DELETE, APPROVE = (
    "CreateTrainingJob",
    "CreateEndpoint",
    "DeleteEndpoint",
    "UpdateModelPackageApproval",
)
ALLOWED = {
    "admin": {a: {TRAIN, DEPLOY, DELETE, APPROVE} for a in ACCOUNTS},
    "alice": {"fraud-dev": {TRAIN, DEPLOY, DELETE}, "fraud-prod": set(), "churn-dev": set()},
    "bob": {"fraud-dev": set(), "fraud-prod": set(), "churn-dev": {TRAIN, DEPLOY, DELETE}},
    "carol": {
        "fraud-dev": {DEPLOY, DELETE, APPROVE},
        "fraud-prod": {DEPLOY, DELETE, APPROVE},
        "churn-dev": set(),
    },
}
RESOURCE = {TRAIN: "training-job", DEPLOY: "endpoint", DELETE: "endpoint", APPROVE: "model-version"}


CELLS = [(p, a) for p in PRINCIPALS for a in ACCOUNTS]


@pytest.mark.parametrize(("principal", "account"), CELLS)
def test_describe_and_update_account(
    organization: Organization, principal: str, account: str
) -> None:
    http, headers = organization.http, organization.headers[principal]
    described = http.get(f"{API}/accounts/{account}", headers=headers)
    assert described.status_code == DESCRIBE[principal][account], described.text
    if described.status_code == 404:
        # exactly what an account that does not exist answers
        ghost = http.get(f"{API}/accounts/no-such-account", headers=headers)
        assert described.json()["error"]["code"] == ghost.json()["error"]["code"]
        assert "does not exist" in described.json()["error"]["message"]
    body = {"tags": {"touched-by": principal}}
    updated = http.patch(f"{API}/accounts/{account}", json=body, headers=headers)
    assert updated.status_code == UPDATE[principal][account], updated.text


@pytest.mark.parametrize("principal", PRINCIPALS)
def test_guardrail_overrides_every_allow(organization: Organization, principal: str) -> None:
    http, headers = organization.http, organization.headers[principal]
    closed = http.post(f"{API}/accounts/fraud-prod/close", headers=headers)
    assert closed.status_code == CLOSE_PROD[principal], closed.text
    root = organization.headers["admin"]
    assert _ok(http.get(f"{API}/accounts/fraud-prod", headers=root))["status"] == "active"


@pytest.mark.parametrize(("principal", "account"), CELLS)
def test_later_actions_cell_by_cell(
    organization: Organization, principal: str, account: str
) -> None:
    root = organization.headers["admin"]
    for action, kind in RESOURCE.items():
        body = {
            "principal": principal,
            "action": action,
            "resource": f"krn:ketch:{account}:{kind}/x",
        }
        result = _ok(organization.http.post(f"{API}/iam/simulate", json=body, headers=root))
        expected = "Allow" if action in ALLOWED[principal][account] else "Deny"
        assert result["decision"] == expected, (principal, account, action, result)


def test_prod_deploys_need_mlengineer(organization: Organization) -> None:
    """DataScientist deploys to dev stages only: alice gets it in fraud-dev, never prod."""
    root = organization.headers["admin"]
    body = {"principal": "alice", "action": DEPLOY, "resource": "krn:ketch:fraud-dev:endpoint/e"}
    assert (
        _ok(organization.http.post(f"{API}/iam/simulate", json=body, headers=root))["decision"]
        == "Allow"
    )


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/accounts/fraud-dev"),
        ("GET", "/accounts"),
        ("POST", "/ous"),
        ("GET", "/users"),
        ("POST", "/assignments"),
        ("GET", "/whoami"),
        ("POST", "/iam/simulate"),
        ("GET", "/audit/events"),
    ],
)
def test_anonymous_requests_are_401(organization: Organization, method: str, path: str) -> None:
    response = organization.http.request(
        method, f"{API}{path}", json={} if method == "POST" else None
    )
    assert_envelope(response, 401, "Unauthenticated")


def test_a_revoked_token_is_401_from_the_next_request(organization: Organization) -> None:
    http, root = organization.http, organization.headers["admin"]
    issued = _ok(
        http.post(f"{API}/auth/login", json={"username": "bob", "password": PASSWORD}), 200
    )
    bob = {"Authorization": f"Bearer {issued['token']}"}
    _ok(http.get(f"{API}/accounts/churn-dev", headers=bob))
    _ok(http.post(f"{API}/tokens/{issued['token_id']}/revoke", headers=root))
    assert_envelope(http.get(f"{API}/accounts/churn-dev", headers=bob), 401, "Unauthenticated")
    # the user's other token still works
    _ok(http.get(f"{API}/accounts/churn-dev", headers=organization.headers["bob"]))
