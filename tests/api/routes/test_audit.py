"""The audit routes over the SDK on the in-process app: filters, pages, verification."""

from __future__ import annotations

from itertools import pairwise

import pytest
from fastapi.testclient import TestClient

import ketch
from ketch.core.errors import InvalidInput, Unauthenticated
from ketch.schemas.audit import AuditOutcome
from ketch.server.context import Context
from support.audit import record, tamper, write_digest
from support.envelope import assert_envelope
from support.settings import TEST_HOST

Headers = dict[str, str]


@pytest.fixture
def trail(context: Context, client: ketch.Client) -> Context:
    """Twelve records of carol and dave, alternating accounts; every fourth one denied."""
    for n in range(12):
        record(
            context,
            1,
            start=n,
            principal="carol" if n % 2 else "dave",
            account="fraud-dev" if n < 6 else "fraud-prod",
            outcome=AuditOutcome.DENIED if n % 4 == 0 else AuditOutcome.SUCCESS,
        )
    return context


def test_list_filters(trail: Context, client: ketch.Client) -> None:
    def actions(**filters: object) -> list[str]:
        return [e.action for e in client.audit.iter_all(**filters) if e.action.startswith("Act")]

    assert actions(principal="carol") == [f"Action{n}" for n in (1, 3, 5, 7, 9, 11)]
    assert actions(account="fraud-prod", principal="dave") == ["Action6", "Action8", "Action10"]
    assert actions(outcome="denied") == ["Action0", "Action4", "Action8"]
    assert actions(action="Action5") == ["Action5"]
    assert actions(principal="carol", newest_first=True)[:2] == ["Action11", "Action9"]
    assert actions(principal="nobody") == []


def test_time_filters_select_start_inclusive_end_exclusive(
    trail: Context, client: ketch.Client
) -> None:
    events = list(client.audit.iter_all(principal="carol"))
    cut = events[3].time
    later = list(client.audit.iter_all(principal="carol", start_time=cut))
    earlier = list(client.audit.iter_all(principal="carol", end_time=cut))
    assert sorted(e.seq for e in later + earlier) == [e.seq for e in events]
    assert all(e.time >= cut for e in later) and all(e.time < cut for e in earlier)
    assert events[3].seq in {e.seq for e in later}


def test_pages_walk_every_record_once_in_either_order(trail: Context, client: ketch.Client) -> None:
    everything = [e.seq for e in client.audit.iter_all(page_size=1000)]
    assert everything == sorted(everything) and len(everything) >= 12
    first = client.audit.list(max_results=5)
    assert len(first.items) == 5 and first.next_token
    assert [e.seq for e in client.audit.iter_all(page_size=5)] == everything
    newest = [e.seq for e in client.audit.iter_all(page_size=5, newest_first=True)]
    assert newest == everything[::-1]
    with pytest.raises(InvalidInput, match="next_token"):
        client.audit.list(newest_first=True, next_token=first.next_token)


def test_records_carry_their_chain_fields(trail: Context, client: ketch.Client) -> None:
    events = list(client.audit.iter_all())
    assert all(len(e.hash) == 64 for e in events)
    assert all(b.prev_hash == a.hash for a, b in pairwise(events))
    denied = client.audit.list(action="Action0").items[0]
    assert (denied.principal, denied.account, denied.outcome) == ("dave", "fraud-dev", "denied")
    assert denied.source_ip == "127.0.0.1" and denied.request_id == "req-0"


def test_bad_filters_are_refused(
    trail: Context, client: ketch.Client, http: TestClient, auth_headers: Headers
) -> None:
    naive = http.get(
        "/api/v1/audit/events", params={"start_time": "2026-11-23T10:00:00"}, headers=auth_headers
    )
    assert "timezone" in assert_envelope(naive, 400, "ValidationError")["message"]
    bad_outcome = http.get(
        "/api/v1/audit/events", params={"outcome": "maybe"}, headers=auth_headers
    )
    assert_envelope(bad_outcome, 400, "ValidationError")
    with pytest.raises(InvalidInput, match="outcome"):
        client.audit.list(outcome="maybe")


def test_mutating_requests_are_recorded(context: Context, client: ketch.Client) -> None:
    client.accounts.create("audit-dev", stage="sandbox")
    (created,) = client.audit.iter_all(action="CreateAccount")
    assert (created.principal, created.outcome) == ("admin", "success")
    assert "audit-dev" in (created.resource or "")


def test_verify_reports_ok_then_names_the_damage(trail: Context, client: ketch.Client) -> None:
    write_digest(trail)
    report = client.audit.verify()
    assert report.ok, report.findings
    assert report.records_checked >= 12 and report.digests_checked >= 1
    tamper(trail, "UPDATE audit_events SET principal = 'mallory' WHERE action = 'Action2'")
    seq = client.audit.list(action="Action2").items[0].seq
    report = client.audit.verify()
    assert not report.ok
    assert [(f.kind, f.message) for f in report.findings] == [
        ("record_changed", f"record {seq}: contents changed (hash mismatch)")
    ]


def test_verify_without_a_digest_is_not_ok(trail: Context, client: ketch.Client) -> None:
    report = client.audit.verify()
    assert not report.ok
    assert [f.kind for f in report.findings] == ["stale"]


def test_the_routes_need_credentials(trail: Context, http: TestClient) -> None:
    anonymous = ketch.Client(url=f"http://{TEST_HOST}", token="", http_client=http)
    with pytest.raises(Unauthenticated):
        anonymous.audit.list()
    with pytest.raises(Unauthenticated):
        anonymous.audit.verify()


def test_verify_reads_only_the_public_key_and_never_makes_one(
    trail: Context, client: ketch.Client
) -> None:
    from ketch.audit.signing import public_key_path

    write_digest(trail)
    key = trail.audit.key_path
    assert client.audit.verify().ok
    public = public_key_path(key)
    kept = public.read_bytes()
    public.unlink()
    with pytest.raises(ketch.KetchError, match=r"public key .* is missing"):
        client.audit.verify()
    assert not public.exists()  # verification did not write a new key pair
    assert key.exists()
    public.write_bytes(kept)
    assert client.audit.verify().ok
