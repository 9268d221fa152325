"""The end-to-end demo behind `make demo`: a real server on the embedded defaults, driven
through the SDK as a platform team would on its first day.

It starts `ketch server` (SQLite and local folders under a fresh demo home), which
bootstraps the organisation and its first admin; then it lays out OUs and accounts
for two teams, closes a sandbox, shows a refused bad request; then it gives the teams
their people (users, groups, permission sets assigned on accounts and OUs, a guardrail
that holds even against the admin), signs in as a data scientist to show what she can
and cannot reach, asks the policy simulator why, and verifies the audit trail. The demo
grows with every capability ketch gains.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table

from ketch.core.errors import KetchError
from ketch.sdk import Client, jobs

console = Console()

LAYOUT = [
    # account id, OU path, stage, tags
    ("fraud-dev", "teams/fraud", "dev", {"team": "fraud", "cost-center": "cc-101"}),
    ("fraud-preprod", "teams/fraud", "preprod", {"team": "fraud", "cost-center": "cc-101"}),
    ("fraud-prod", "teams/fraud/prod", "prod", {"team": "fraud", "cost-center": "cc-101"}),
    ("churn-dev", "teams/churn", "dev", {"team": "churn"}),
    ("churn-prod", "teams/churn/prod", "prod", {"team": "churn"}),
    ("shared-services", "platform", "shared", {"team": "platform"}),
    ("alice-sandbox", "sandboxes", "sandbox", {"owner": "alice"}),
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start_server(home: Path, port: int) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KETCH_")}
    env["KETCH_HOME"] = str(home)
    log = open(home / "server.log", "ab")  # noqa: SIM115 (handed to the child)
    process = subprocess.Popen(
        [sys.executable, "-m", "ketch", "server", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    log.close()
    url = f"http://127.0.0.1:{port}"
    with console.status(f"starting ketch server on {url} ..."):
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise SystemExit(f"the server exited; see {home / 'server.log'}")
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    return process
            except httpx.HTTPError:
                time.sleep(0.1)
    process.kill()
    raise SystemExit(f"the server did not become ready; see {home / 'server.log'}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()


def run_demo(client: Client) -> None:
    """The scripted walk-through, against any running server."""
    me = client.whoami()
    console.rule(
        f"[bold]ketch demo[/bold]: organisation {me.organization}, signed in as {me.principal.name}"
    )

    console.print("\n[bold]1. Organisational units[/bold] (missing parents created on request)")
    for path in ("teams/fraud/prod", "teams/churn/prod", "platform", "sandboxes"):
        parent, _, name = path.rpartition("/")
        ou = client.ous.create(
            name,
            parent=parent,
            create_missing_parents=True,
            client_token=f"demo-ou-{path.replace('/', '.')}",
        )
        console.print(f"   created {ou.krn}")

    console.print("\n[bold]2. Accounts[/bold] (one per team and stage)")
    for account_id, ou_path, stage, tags in LAYOUT:
        account = client.accounts.create(
            account_id, stage=stage, ou=ou_path, tags=tags, client_token=f"demo-{account_id}"
        )
        console.print(f"   created {account.krn:<40} in {ou_path} ({stage})")
    again = client.accounts.create(
        "fraud-dev",
        stage="dev",
        ou="teams/fraud",
        tags=LAYOUT[0][3],
        client_token="demo-fraud-dev",  # noqa: S106
    )
    console.print(
        f"   retried a create with the same client token: got {again.id} back, nothing duplicated"
    )

    console.print("\n[bold]3. Changes[/bold]")
    client.accounts.move("alice-sandbox", ou="teams/fraud")
    console.print("   moved alice-sandbox to teams/fraud")
    client.accounts.close("alice-sandbox")
    console.print("   closed alice-sandbox (records kept, new work refused)")

    console.print("\n[bold]4. Bad input is refused and changes nothing[/bold]")
    for bad_id in ("Fraud_Dev", "../etc", "admin"):
        try:
            client.accounts.create(bad_id, stage="dev")
        except KetchError as exc:
            console.print(f"   {bad_id!r}: {exc.code.value}: {exc.message}")

    _identity_and_access(client)
    _artifacts(client)
    _training_job(client)
    _summary(client)


DEMO_PASSWORD = "Demo-passw0rd-for-the-teams"  # noqa: S105 (demo users on a throwaway server)


def _identity_and_access(admin: Client) -> None:
    console.print("\n[bold]5. People and permissions[/bold]")
    for name in ("alice", "bob", "carol"):
        admin.users.create(name, password=DEMO_PASSWORD, display_name=name.title())
    admin.groups.create("churn-ds", description="churn data scientists")
    admin.groups.add_member("churn-ds", "bob")
    admin.groups.create("release", description="may delete prod endpoints")
    admin.groups.add_member("release", "carol")
    for permission_set, kind, principal, target_type, target in (
        ("DataScientist", "user", "alice", "account", "fraud-dev"),
        ("ReadOnly", "user", "alice", "account", "fraud-prod"),
        ("DataScientist", "group", "churn-ds", "account", "churn-dev"),
        ("MLEngineer", "user", "carol", "ou", "teams/fraud"),
    ):
        admin.assignments.create(
            permission_set=permission_set,
            principal_type=kind,
            principal=principal,
            target_type=target_type,
            target=target,
        )
        console.print(f"   {permission_set:<13} for {kind} {principal} on {target_type} {target}")
    guardrail = admin.guardrails.create(
        "prod-endpoint-deletes-by-release-only",
        example="prod-endpoint-deletes-by-release-only",
        ou="teams/fraud/prod",
    )
    console.print(f"   guardrail {guardrail.name} on OU {guardrail.ou}")

    console.print("\n[bold]6. alice signs in[/bold] and sees only her accounts")
    alice = Client(url=admin.url, token=None)
    alice.login("alice", DEMO_PASSWORD)
    me = alice.whoami()
    console.print(f"   {me.principal.name}, groups: {', '.join(me.groups) or '(none)'}")
    visible = [a.id for a in alice.accounts.iter_all()]
    console.print(f"   accounts alice can see: {', '.join(visible)}")
    try:
        alice.accounts.get("churn-dev")
    except KetchError as exc:
        console.print(f"   churn-dev for alice: {exc.code.value} ({exc.message})")
    try:
        alice.groups.add_member("release", "alice")
    except KetchError as exc:
        console.print(f"   alice joining 'release': {exc.code.value}")

    console.print("\n[bold]7. The policy simulator[/bold] explains decisions")
    for principal, action, resource in (
        ("alice", "CreateTrainingJob", "krn:ketch:fraud-dev:training-job/churn-xgb"),
        ("alice", "CreateTrainingJob", "krn:ketch:fraud-prod:training-job/churn-xgb"),
        ("admin", "DeleteEndpoint", "krn:ketch:fraud-prod:endpoint/scoring"),
        ("carol", "DeleteEndpoint", "krn:ketch:fraud-prod:endpoint/scoring"),
    ):
        result = admin.iam.simulate(principal=principal, action=action, resource=resource)
        deciders = ", ".join(f"{p.kind} {p.name}" for p in result.deciding_policies)
        console.print(
            f"   {principal:<5} {action} {resource.removeprefix('krn:ketch:')}: "
            f"[bold]{result.decision}[/bold] ({deciders or 'no permission set allows it'})",
            highlight=False,
        )
    alice.close()

    console.print("\n[bold]8. The audit trail[/bold]")
    denied = admin.audit.list(outcome="denied").items
    for event in denied[:3]:
        console.print(f"   denied: {event.principal} {event.action} {event.resource or ''}")
    report = admin.audit.verify()
    console.print(
        f"   verify: {'OK' if report.ok else 'FAILED'}: {report.records_checked} records, "
        f"{report.digests_checked} signed digests"
    )


def _artifacts(client: Client) -> None:
    console.print("\n[bold]9. Artifacts[/bold] (each account's own object store, ketch:// URIs)")
    with tempfile.TemporaryDirectory(prefix="ketch-demo-data-") as scratch:
        data = Path(scratch) / "churn"
        data.mkdir()
        rows = ["customer,tenure_months,monthly_spend,churned"]
        rows += [f"c{i:03d},{i % 48},{20 + (i * 7) % 80},{int(i % 5 == 0)}" for i in range(200)]
        (data / "train.csv").write_text("\n".join(rows[:161]) + "\n")
        (data / "test.csv").write_text("\n".join([rows[0], *rows[161:]]) + "\n")
        uploaded = client.artifacts.upload(data, "ketch://fraud-dev/datasets/churn/")
        for artifact in uploaded:
            checksum = f", sha256 {artifact.sha256[:12]}…" if artifact.sha256 else ""
            console.print(f"   uploaded {artifact.uri} ({artifact.size} bytes{checksum})")
        copy = Path(scratch) / "copy"
        client.artifacts.download("ketch://fraud-dev/datasets/churn/", copy)
        same = all(
            (copy / f).read_bytes() == (data / f).read_bytes() for f in ("train.csv", "test.csv")
        )
        console.print(f"   downloaded the folder again, checksums verified: identical = {same}")
        for bad in ("ketch://fraud-dev/../fraud-prod/x", "ketch://fraud-dev/%2e%2e/x"):
            try:
                client.artifacts.upload(data / "test.csv", bad)
            except KetchError as exc:
                console.print(f"   {bad}: {exc.code.value}: {exc.message}")


TRAIN_SCRIPT = """\
# An unmodified SageMaker script-mode training script.
import argparse, csv, os
import joblib
from sklearn.linear_model import LogisticRegression

parser = argparse.ArgumentParser()
parser.add_argument("--regularization", type=float, default=1.0)
parser.add_argument("--max-iter", type=int, default=100)
args = parser.parse_args()

with open(os.path.join(os.environ["SM_CHANNEL_TRAIN"], "train.csv")) as rows:
    data = list(csv.DictReader(rows))
features = [[float(r["tenure_months"]), float(r["monthly_spend"])] for r in data]
labels = [int(r["churned"]) for r in data]
model = LogisticRegression(C=args.regularization, max_iter=args.max_iter).fit(features, labels)
print(f"training accuracy: {model.score(features, labels):.3f}")
joblib.dump(model, os.path.join(os.environ["SM_MODEL_DIR"], "model.joblib"))
"""


def _training_job(client: Client) -> None:
    console.print(
        "\n[bold]10. A training job[/bold] (a SageMaker script, unchanged, on the local executor)"
    )
    with tempfile.TemporaryDirectory(prefix="ketch-demo-code-") as code:
        (Path(code) / "train.py").write_text(TRAIN_SCRIPT)
        job = jobs.train(
            entry_point="train.py",
            source_dir=code,
            inputs={"train": "ketch://fraud-dev/datasets/churn/train.csv"},
            hyperparameters={"regularization": 0.5, "max-iter": 200},
            instance_type="cpu.small",
            name="churn-logreg-1",
            metric_definitions=[
                {"name": "train:accuracy", "regex": r"training accuracy: ([0-9.]+)"}
            ],
            client=client,
            quiet=True,
            timeout=300,
        )
    path = " -> ".join(t.status.value for t in job.transitions)
    console.print(f"   {job.krn}: {path}")
    if job.status.value != "Completed":
        raise RuntimeError(
            f"the demo's training job ended {job.status.value}: {job.failure_reason}"
        )
    console.print(f"   model: {job.model_artifact_uri}")
    console.print(f"   billable seconds: {job.billable_seconds:.2f}")
    metrics = client.training_jobs.metrics("fraud-dev", job.name)
    for name, points in sorted(metrics.series.items()):
        console.print(f"   metric {name}: {', '.join(f'{p.value:g}' for p in points)}")


def _summary(client: Client) -> None:
    accounts = list(client.accounts.iter_all())
    ous = list(client.ous.iter_all())
    table = Table(title=f"Summary: {len(ous)} OUs, {len(accounts)} accounts")
    for column in ("account", "stage", "status", "OU", "tags"):
        table.add_column(column)
    for account in accounts:
        table.add_row(
            account.id,
            account.stage.value,
            account.status.value,
            account.ou_path or "(root)",
            ", ".join(f"{k}={v}" for k, v in sorted(account.tags.items())),
        )
    console.print()
    console.print(table)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--home",
        type=Path,
        default=Path(".ketch-demo"),
        help="demo KETCH_HOME, wiped at start (default ./.ketch-demo)",
    )
    parser.add_argument(
        "--keep-running",
        action="store_true",
        help="leave the server running after the demo (Ctrl-C to stop)",
    )
    args = parser.parse_args(argv)
    home: Path = args.home.resolve()
    if home.exists():
        shutil.rmtree(home)
    home.mkdir(parents=True)
    port = _free_port()
    process = _start_server(home, port)
    try:
        admin = json.loads((home / "initial-admin.json").read_text())
        console.print(
            f"server up at http://127.0.0.1:{port}; first admin "
            f"[bold]{admin['username']}[/bold] (password in {home}/initial-admin.json)"
        )
        run_demo(Client(url=f"http://127.0.0.1:{port}", token=admin["token"]))
        if args.keep_running:
            console.print(f"\nserver still running at http://127.0.0.1:{port} (Ctrl-C stops it)")
            process.wait()
    except KeyboardInterrupt:
        pass
    finally:
        _stop(process)
    console.print(f"\ndemo finished; state kept in {home}")


if __name__ == "__main__":
    main()
