"""Benchmark: the cost of authorisation in ketch (a benchmark, not a test: it asserts nothing).

Part 1, *decision*: an organisation held in memory (no database) with about 200 OUs,
2,000 accounts, 7,000 users in 1,000 groups (more than 10,000 Cedar entities), the
built-in permission sets, assignments and guardrails, is compiled once with
``compile_policies`` into cached Cedar handles; then ``ketch.iam.decide`` is timed, one
call at a time with ``time.perf_counter_ns``, on allowed and denied requests, on known
resources (accounts, the organisation) and on account-owned resources the entity set
does not hold (a training job, decided on a cached entity slice with a stand-in for the
job). The goal is a p50 under 100 microseconds. Diagnostic rows split the known case
into ketch's own Python (the request context) and Cedar's ``is_authorized`` on the
request ketch makes (the principal's policies for the action, the context cut to what
they read); comparison rows, timed apart, show Cedar on the whole organisation's set
with the whole context, and adding a new resource to its entity slice or to the whole
entity set (what ketch did before).

Part 2, *request overhead*: a real ``ketch server`` (``python -m ketch server``: migration,
bootstrap, uvicorn, the audit digest writer) on a free loopback port with a temporary
``KETCH_HOME`` and SQLite, driven sequentially over one keep-alive ``httpx`` client. Public
baselines (``GET /healthz``, no database; ``GET /readyz``, one ``SELECT 1``) are timed
interleaved with authorised GETs (organisation, one account) and, in a second phase, with
an authorised and audited create (``POST /api/v1/ous``). Overhead = authorised minus the
``/healthz`` baseline (it includes the handler's own database read or write). With
``--postgres`` the same runs again on a throwaway PostgreSQL cluster (tests/support).

Reproduce (from the repository root)::

    .venv/bin/python benchmarks/authz.py             # 5,000 samples a case, 2,000 GETs, 500 creates
    .venv/bin/python benchmarks/authz.py --quick     # 10x fewer samples and requests
    .venv/bin/python benchmarks/authz.py --postgres  # also on PostgreSQL (fsync off: optimistic)

A full run takes about 3 minutes on 2 cores, 4 with ``--postgres``; ``--quick`` about 1.
Results of a run are kept in ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import cedarpy
import httpx

from ketch.iam import Action, Caller, RequestFacts, ResourceRef, decide
from ketch.iam.authorizer import request_context
from ketch.iam.builtin import (
    BUILTIN_SETS,
    EXAMPLE_GUARDRAILS,
    ORG_ADMIN_SET,
    applicable_system_policies,
)
from ketch.iam.engine import (
    AccessFacts,
    AssignmentFacts,
    CompiledPolicies,
    GuardrailFacts,
    PermissionSetFacts,
    compile_policies,
    uid,
)
from ketch.iam.policy_text import permission_set_templates
from ketch.org import AccountFacts, OrgSnapshot, OuFacts

GOAL_US = 100.0
ROOT_OU = "ou-root"
STAGES = ("sandbox", "dev", "prod")
SEED = 20261123


# -- statistics -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Stats:
    name: str
    samples: int
    p50_us: float
    p99_us: float
    mean_us: float


def percentile(ordered: Sequence[int], pct: float) -> int:
    """Nearest-rank percentile of already sorted samples."""
    rank = max(1, -(-len(ordered) * pct // 100))  # ceil without floats
    return ordered[int(rank) - 1]


def summarise(name: str, samples_ns: list[int]) -> Stats:
    ordered = sorted(samples_ns)
    return Stats(
        name=name,
        samples=len(ordered),
        p50_us=percentile(ordered, 50) / 1000,
        p99_us=percentile(ordered, 99) / 1000,
        mean_us=statistics.fmean(ordered) / 1000,
    )


@dataclass(frozen=True, slots=True)
class Case:
    name: str
    call: Callable[[int], object]
    every: int = 1
    """Timed on every ``every``-th round only (for slow diagnostics)."""


def timed_rounds(cases: Sequence[Case], rounds: int, warmup: int) -> list[Stats]:
    """Time the cases interleaved, one call of each per round, so that a change in machine
    load during the run hits every case of the group alike; ``warmup`` untimed rounds first."""
    samples: dict[str, list[int]] = {case.name: [] for case in cases}
    clock = time.perf_counter_ns
    for i in range(-warmup, rounds):
        if i == 0:
            gc.collect()
        for case in cases:
            if i % case.every:
                continue
            start = clock()
            case.call(i)
            elapsed = clock() - start
            if i >= 0:
                samples[case.name].append(elapsed)
    return [summarise(case.name, samples[case.name]) for case in cases]


# -- part 1: the decision, on an organisation built in memory ---------------------------


@dataclass(frozen=True)
class OrgShape:
    divisions: int = 10
    teams_per_division: int = 5
    accounts: int = 2000
    users: int = 7000
    groups: int = 1000
    guardrails: int = 20
    min_policies: int = 1000


def build_facts(shape: OrgShape) -> AccessFacts:
    """A synthetic organisation: OU tree root/div/team/stage, accounts in the stage OUs,
    users in 1-3 groups, one org admin, group assignments until ``min_policies`` policies."""
    rng = random.Random(SEED)  # noqa: S311 (a reproducible synthetic org, not security)
    ous = {ROOT_OU: OuFacts(ROOT_OU, "root", None, "")}
    leaves: list[OuFacts] = []
    team_ous: list[str] = []
    for d in range(shape.divisions):
        div = OuFacts(f"ou-d{d}", f"div-{d}", ROOT_OU, f"div-{d}")
        ous[div.id] = div
        for t in range(shape.teams_per_division):
            team = OuFacts(f"ou-d{d}t{t}", f"team-{t}", div.id, f"{div.path}/team-{t}")
            ous[team.id] = team
            team_ous.append(team.id)
            for stage in STAGES:
                leaf = OuFacts(f"{team.id}-{stage}", stage, team.id, f"{team.path}/{stage}")
                ous[leaf.id] = leaf
                leaves.append(leaf)
    accounts = {}
    for a in range(shape.accounts):
        leaf = leaves[a % len(leaves)]
        account = AccountFacts(f"acct-{a:04d}", leaf.id, leaf.name, "active")
        accounts[account.id] = account
    org = OrgSnapshot(
        organization_id="org-1",
        organization_name="bench",
        root_ou_id=ROOT_OU,
        ous=ous,
        accounts=accounts,
        ou_ids_by_path={ou.path: ou.id for ou in ous.values()},
    )
    groups = tuple(["release", *(f"grp-{g:04d}" for g in range(shape.groups - 1))])
    user_groups = {
        f"user-{u:04d}": tuple(rng.sample(groups, rng.randint(1, 3))) for u in range(shape.users)
    }
    user_groups["admin"] = ()
    sets = {
        f"ps-{s.name}": PermissionSetFacts(f"ps-{s.name}", s.name, s.policy_text, None)
        for s in BUILTIN_SETS
    }
    templates_per_set = {
        ps_id: len(permission_set_templates(ps.policy_text)) for ps_id, ps in sets.items()
    }
    assignments = [
        AssignmentFacts("as-admin", f"ps-{ORG_ADMIN_SET}", "user", "admin", "ou", ROOT_OU)
    ]
    guardrail_list = [
        GuardrailFacts(f"gr-{g}", name, text, team_ous[g % len(team_ous)])
        for g, (name, text) in enumerate(
            sorted(EXAMPLE_GUARDRAILS.items()) * (shape.guardrails // len(EXAMPLE_GUARDRAILS))
        )
    ]
    # Group assignments, one per group in turn, until the set holds enough policies.
    rotation = ("DataScientist", "ReadOnly", "MLEngineer", "AccountAdmin", "DataScientist")
    policies = len(guardrail_list) + 1 + 5  # guardrail links, the admin link, system policies
    n = 0
    while policies < shape.min_policies:
        group = groups[n % len(groups)]
        ps_id = f"ps-{rotation[n % len(rotation)]}"
        if n % 3 == 0:  # one in three on a team OU, the rest on one account
            target_type, target = "ou", team_ous[n % len(team_ous)]
        else:
            target_type, target = "account", f"acct-{rng.randrange(shape.accounts):04d}"
        assignments.append(AssignmentFacts(f"as-{n}", ps_id, "group", group, target_type, target))
        policies += templates_per_set[ps_id]
        n += 1
    return AccessFacts(
        version=(1, 1),
        org=org,
        user_groups=user_groups,
        groups=groups,
        permission_sets=sets,
        assignments=tuple(assignments),
        guardrails=tuple(guardrail_list),
        allowed_cidrs=None,
    )


@dataclass(frozen=True, slots=True)
class Request:
    caller: Caller
    action: Action
    resource: ResourceRef
    account: str | None
    facts: RequestFacts


def _candidates(compiled: CompiledPolicies, rng: random.Random, count: int) -> Iterator[Request]:
    """Requests a caller might make: on accounts and the organisation (known entities) and on
    training jobs inside accounts (unknown entities), from assigned and unassigned users."""
    facts = compiled.facts
    users = sorted(facts.user_groups)
    accounts = sorted(facts.org.accounts)
    # Callers whose groups hold assignments, and the accounts those assignments reach.
    reach: dict[str, list[str]] = {}
    for a in facts.assignments:
        if a.principal_type == "group" and a.target_type == "account":
            reach.setdefault(a.principal_name, []).append(a.target_id)
    for _ in range(count):
        user = rng.choice(users)
        groups = [g for g in facts.user_groups[user] if g in reach]
        if groups and rng.random() < 0.7:
            account = rng.choice(reach[rng.choice(groups)])
        else:
            account = rng.choice(accounts)
        caller = Caller(user_id=f"id-{user}", name=user)
        kind = rng.randrange(6)
        if kind == 0:
            yield Request(
                caller,
                Action.DESCRIBE_ACCOUNT,
                ResourceRef("Account", account),
                account,
                RequestFacts(),
            )
        elif kind == 1:
            yield Request(
                caller,
                Action.UPDATE_ACCOUNT,
                ResourceRef("Account", account),
                account,
                RequestFacts(),
            )
        elif kind == 2:
            # gpu.large in a sandbox account trips the sandbox-instance-size-limit guardrail.
            instance = rng.choice(("cpu.small", "gpu.large"))
            yield Request(
                caller,
                Action.CREATE_TRAINING_JOB,
                ResourceRef("Account", account),
                account,
                RequestFacts(instance_type=instance),
            )
        elif kind == 3:
            org = facts.org
            who = Caller(user_id="id-admin", name="admin") if rng.random() < 0.5 else caller
            yield Request(
                who,
                Action.DESCRIBE_ORGANIZATION,
                ResourceRef("Organization", org.organization_id),
                None,
                RequestFacts(),
            )
        else:
            action = Action.DESCRIBE_TRAINING_JOB if kind == 4 else Action.STOP_TRAINING_JOB
            job = ResourceRef("TrainingJob", f"job-{uuid.uuid4().hex[:12]}", "Account", account)
            yield Request(caller, action, job, account, RequestFacts())


def request_pools(compiled: CompiledPolicies, size: int) -> dict[str, list[Request]]:
    """Up to ``size`` distinct requests per case, each classified by a real decision."""
    pools: dict[str, list[Request]] = {
        "known resource, allowed": [],
        "known resource, denied": [],
        "unknown resource (TrainingJob), allowed": [],
        "unknown resource (TrainingJob), denied": [],
    }
    rng = random.Random(SEED + 1)  # noqa: S311 (reproducible requests)
    for request in _candidates(compiled, rng, size * 40):
        allowed = _decide(compiled, request).allowed
        known = (request.resource.type, request.resource.id) in compiled.known
        key = (
            f"{'known resource' if known else 'unknown resource (TrainingJob)'}, "
            f"{'allowed' if allowed else 'denied'}"
        )
        if len(pools[key]) < size:
            pools[key].append(request)
        if all(len(p) >= size for p in pools.values()):
            break
    for name, pool in pools.items():
        if not pool:
            raise RuntimeError(f"no request fell in case '{name}'; the synthetic org is off")
    return pools


def _cedar_call(compiled: CompiledPolicies, r: Request) -> tuple[dict[str, Any], Any]:
    """The Cedar request and policy set ``decide`` evaluates for a known resource."""
    context = request_context(compiled, r.caller, account=r.account, facts=r.facts)
    system = applicable_system_policies(r.action, context)
    policies = compiled.policies_for(r.caller.name, r.resource, r.action, system)
    if policies.context_keys is not None:
        context = {key: context[key] for key in policies.context_keys if key in context}
    request: dict[str, Any] = {
        "principal": uid("User", r.caller.name),
        "action": uid("Action", r.action.value),
        "resource": uid(r.resource.type, r.resource.id),
    }
    if context:
        request["context"] = json.dumps(context, separators=(",", ":"))
    return request, policies.policy_set


def _decide(compiled: CompiledPolicies, r: Request) -> Any:
    return decide(compiled, r.caller, r.action, r.resource, account=r.account, facts=r.facts)


@dataclass
class DecisionReport:
    entities: int
    policies: int
    assignments: int
    guardrails: int
    compile_ms: float
    rows: list[Stats]


def bench_decisions(samples: int, warmup: int, min_policies: int) -> DecisionReport:
    facts = build_facts(OrgShape(min_policies=min_policies))
    start = time.perf_counter_ns()
    compiled = compile_policies(facts)
    compile_ms = (time.perf_counter_ns() - start) / 1e6
    policies = len(compiled.sources)  # one per static policy and per template link
    entities = len(compiled.known)
    pools = request_pools(compiled, 256)
    cases: dict[str, Case] = {}
    for name, pool in pools.items():

        def call(i: int, pool: list[Request] = pool) -> object:
            return _decide(compiled, pool[i % len(pool)])

        cases[name] = Case(f"decide: {name}", call)

    # Diagnostics: ketch's request context, and Cedar itself on the request ketch makes
    # (known, allowed): the principal's own policies for the action, the context cut to
    # what they read.
    known = pools["known resource, allowed"]
    cedar_calls = [_cedar_call(compiled, r) for r in known]

    def context_only(i: int) -> object:
        r = known[i % len(known)]
        return request_context(compiled, r.caller, account=r.account, facts=r.facts)

    def cedar_only(i: int) -> object:
        request, policy_set = cedar_calls[i % len(cedar_calls)]
        return cedarpy.is_authorized(request, policy_set, compiled.entities)

    # For comparison: Cedar on the whole organisation's policy set with the whole context
    # (what ketch did before it cut each request's policies and context).
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
    whole_requests = [
        {
            "principal": uid("User", r.caller.name),
            "action": uid("Action", r.action.value),
            "resource": uid(r.resource.type, r.resource.id),
            "context": request_context(compiled, r.caller, account=r.account, facts=r.facts),
        }
        for r in known
    ]

    def cedar_whole_set(i: int) -> object:
        return cedarpy.is_authorized(
            whole_requests[i % len(whole_requests)], whole, compiled.entities
        )

    unknown = pools["unknown resource (TrainingJob), allowed"]

    def entity_slice_only(i: int) -> object:
        r = unknown[i % len(unknown)]
        policies = compiled.policies_for(r.caller.name, r.resource, r.action, ())
        return compiled.entity_slice(r.caller.name, r.action, r.resource, policies)

    def add_to_whole_entity_set(i: int) -> object:
        r = unknown[i % len(unknown)].resource
        entity = {
            "uid": uid(r.type, r.id),
            "attrs": {},
            "parents": [uid("Account", r.parent_id or "")],
        }
        return compiled.entities.with_added_json_str(json.dumps([entity]))

    # Separate groups, so that the decisions are not timed between the slow comparisons
    # (the whole policy set, copies of the entity set), which evict the CPU caches.
    known_group = [
        cases["known resource, allowed"],
        cases["known resource, denied"],
        Case("  of which request_context (known)", context_only),
        Case("  of which cedarpy.is_authorized (known)", cedar_only),
    ]
    unknown_group = [
        cases["unknown resource (TrainingJob), allowed"],
        cases["unknown resource (TrainingJob), denied"],
    ]
    comparison_group = [
        Case("for comparison: Cedar on the whole set, whole context (known)", cedar_whole_set),
        Case(
            "for comparison: adding a new resource to its entity slice (unknown)",
            entity_slice_only,
        ),
        Case(
            "for comparison: adding a new resource to the whole entity set (unknown)",
            add_to_whole_entity_set,
        ),
    ]
    rows = timed_rounds(known_group, samples, warmup * 10)
    rows += timed_rounds(unknown_group, samples, warmup * 10)
    rows += timed_rounds(comparison_group, max(samples // 5, 20), warmup)
    return DecisionReport(
        entities=entities,
        policies=policies,
        assignments=len(facts.assignments),
        guardrails=len(facts.guardrails),
        compile_ms=compile_ms,
        rows=rows,
    )


# -- part 2: request overhead on a live server -------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _tail(path: Path, lines: int = 30) -> str:
    text = path.read_text(errors="replace") if path.exists() else ""
    return "\n".join(text.splitlines()[-lines:]) or "(empty log)"


@contextmanager
def live_server(
    home: Path, database_url: str | None, extra_env: dict[str, str] | None = None
) -> Iterator[tuple[str, str]]:
    """``python -m ketch server`` on a free loopback port; yields (url, admin token).

    The server runs in its own session and only it is stopped, by its pid. ``extra_env``
    adds settings (``KETCH_JOBS__PER_ACCOUNT``, ...).
    """
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("KETCH_")}
    env["KETCH_HOME"] = str(home)
    env["KETCH_LOG_LEVEL"] = "WARNING"
    if database_url:
        env["KETCH_DATABASE_URL"] = database_url
    env.update(extra_env or {})
    home.mkdir(parents=True, exist_ok=True)
    url = f"http://127.0.0.1:{port}"
    with (home / "server.log").open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "ketch", "server", "--port", str(port)],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"ketch server exited early:\n{_tail(home / 'server.log')}")
            try:
                if httpx.get(f"{url}/readyz", timeout=1.0).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"ketch server not ready in 60 s:\n{_tail(home / 'server.log')}")
            time.sleep(0.1)
        token = str(json.loads((home / "initial-admin.json").read_text())["token"])
        yield url, token
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


def _check(response: httpx.Response, expected: int) -> None:
    if response.status_code != expected:
        raise RuntimeError(
            f"{response.request.method} {response.request.url.path} answered "
            f"{response.status_code}, expected {expected}: {response.text[:300]}"
        )


CREATE_BASELINE = "GET /healthz (public, no database) [create phase]"
CREATE_PHASE = (
    CREATE_BASELINE,
    "POST /api/v1/ous (authorised + audited create)",
    "GET /api/v1/organization right after a create (recompile)",
)


def bench_requests(url: str, token: str, gets: int, creates: int) -> list[Stats]:
    """Sequential requests on one keep-alive client; each phase interleaves its routes."""
    headers = {"Authorization": f"Bearer {token}"}
    run = uuid.uuid4().hex[:6]
    with httpx.Client(base_url=url, headers=headers, timeout=30) as http:
        _check(http.post("/api/v1/accounts", json={"id": f"bench-{run}", "stage": "dev"}), 201)
        _check(http.post("/api/v1/ous", json={"name": f"bench-{run}"}), 201)
        routes: dict[str, Callable[[int], httpx.Response]] = {
            "GET /healthz (public, no database)": lambda i: http.get("/healthz"),
            "GET /readyz (public, SELECT 1)": lambda i: http.get("/readyz"),
            "GET /api/v1/organization (authorised)": lambda i: http.get("/api/v1/organization"),
            "GET /api/v1/accounts/{id} (authorised)": lambda i: http.get(
                f"/api/v1/accounts/bench-{run}"
            ),
        }
        samples: dict[str, list[int]] = {name: [] for name in routes}
        clock = time.perf_counter_ns
        warmup = max(20, gets // 20)
        for i in range(-warmup, gets):
            for name, call in routes.items():
                start = clock()
                response = call(i)
                elapsed = clock() - start
                _check(response, 200)
                if i >= 0:
                    samples[name].append(elapsed)
        # Creates, interleaved with the baseline; each create moves the org revision, so
        # the GET that follows it recompiles the policies (timed as its own row).
        base, create, after = CREATE_PHASE
        for name in CREATE_PHASE:
            samples[name] = []
        for i in range(-min(20, creates), creates):
            start = clock()
            response = http.get("/healthz")
            samples[base].append(clock() - start)
            _check(response, 200)
            body = {"name": f"b{run}-{i + 100:05d}", "parent": f"bench-{run}"}
            start = clock()
            response = http.post("/api/v1/ous", json=body)
            samples[create].append(clock() - start)
            _check(response, 201)
            start = clock()
            response = http.get("/api/v1/organization")
            samples[after].append(clock() - start)
            _check(response, 200)
            if i < 0:
                for name in CREATE_PHASE:
                    samples[name].pop()
    return [summarise(name, values) for name, values in samples.items()]


def bench_backend(label: str, database_url: str | None, gets: int, creates: int) -> list[Stats]:
    with (
        tempfile.TemporaryDirectory(prefix="ketch-bench-") as folder,
        live_server(Path(folder) / "home", database_url) as (url, token),
    ):
        print(f"[{label}] server at {url}; {gets} GET rounds, {creates} create rounds", flush=True)
        return bench_requests(url, token, gets, creates)


@contextmanager
def throwaway_postgres() -> Iterator[str]:
    """A database on the test suite's throwaway PostgreSQL cluster (tests/support)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from support.postgres import ThrowawayPostgres

    with ThrowawayPostgres() as cluster:
        yield cluster.create_database("bench")


# -- reporting ---------------------------------------------------------------------------


def decision_table(report: DecisionReport) -> str:
    lines = [
        "| decision (in memory, cached handles) | samples | p50 µs | p99 µs | mean µs "
        "| p50 < 100 µs |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for row in report.rows:
        goal = (
            ("yes" if row.p50_us < GOAL_US else "**no**") if row.name.startswith("decide") else ""
        )
        lines.append(
            f"| {row.name.strip()} | {row.samples} | {row.p50_us:.1f} | {row.p99_us:.1f} "
            f"| {row.mean_us:.1f} | {goal} |"
        )
    return "\n".join(lines)


def request_table(label: str, rows: list[Stats]) -> str:
    by_name = {row.name: row for row in rows}
    baseline = rows[0]
    create_base = by_name[CREATE_BASELINE]
    lines = [
        f"| {label}: request | n | p50 ms | p99 ms | p50 - baseline ms "
        "| p99 - baseline ms | p50 ratio |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        base = create_base if row.name in CREATE_PHASE else baseline
        lines.append(
            f"| {row.name} | {row.samples} | {row.p50_us / 1000:.2f} | {row.p99_us / 1000:.2f} "
            f"| {(row.p50_us - base.p50_us) / 1000:+.2f} "
            f"| {(row.p99_us - base.p99_us) / 1000:+.2f} "
            f"| {row.p50_us / base.p50_us:.1f}x |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="10x fewer samples and requests")
    parser.add_argument("--postgres", action="store_true", help="also on PostgreSQL")
    parser.add_argument(
        "--policies",
        type=int,
        default=1000,
        help="add group assignments until the compiled set holds at least this many policies",
    )
    parser.add_argument("--skip-decision", action="store_true")
    parser.add_argument("--skip-requests", action="store_true")
    args = parser.parse_args(argv)
    scale = 10 if args.quick else 1
    samples, gets, creates = 5000 // scale, 2000 // scale, 500 // scale

    print(
        f"python {platform.python_version()}, cedarpy {metadata.version('cedarpy')}, "
        f"{os.cpu_count()} CPUs, {platform.platform()}, load average {_load()}",
        flush=True,
    )
    tables: list[str] = []
    if not args.skip_decision:
        # Rounds hold two unknown-resource decisions (milliseconds each): a short warm-up.
        report = bench_decisions(samples, 50, args.policies)
        print(
            f"decision: {report.entities} entities, {report.policies} policies in the compiled set "
            f"({report.assignments} assignments, {report.guardrails} guardrails), "
            f"compile {report.compile_ms:.0f} ms",
            flush=True,
        )
        tables.append(decision_table(report))
    if not args.skip_requests:
        tables.append(request_table("SQLite", bench_backend("sqlite", None, gets, creates)))
        if args.postgres:
            with throwaway_postgres() as database_url:
                rows = bench_backend("postgres", database_url, gets, creates)
            tables.append(request_table("PostgreSQL", rows))
    print(f"\nload average at the end {_load()}\n")
    print("\n\n".join(tables))


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


if __name__ == "__main__":
    main()
