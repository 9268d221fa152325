"""Benchmark: how fast a job starts and how many trivial jobs ketch runs, beside the floor
of starting a bare Python process (a benchmark, not a test: it asserts nothing).

A real ``ketch server`` (SQLite, local artifact store, the embedded runner on the local
executor, two jobs at once) on a free loopback port. The job is a SageMaker-style script
that appends the time it started to a file named in its environment, then exits 0.

- *submit-to-user-code*: ``POST .../training-jobs`` is sent at t0; the script's first
  statement records t1; latency = t1 - t0 (same machine, same clock), one job at a time.
  Beside it: ``python -c pass`` started and waited for, one at a time. Goal: p50 within
  3x of the bare start.
- *throughput*: 200 trivial jobs submitted at once, from submission of the first to the
  last one ``Completed``; beside it, 200 bare ``python -c pass`` at 2 concurrent. Goal:
  under 1.5x.

Reproduce (from the repository root)::

    .venv/bin/python benchmarks/jobs.py            # 30 latency samples, 200 jobs
    .venv/bin/python benchmarks/jobs.py --quick    # 10 samples, 40 jobs
"""

from __future__ import annotations

import argparse
import io
import subprocess
import sys
import tarfile
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from authz import Stats, live_server, summarise

from ketch import Client

SCRIPT = """\
import os, time
with open(os.environ["BENCH_STARTS"], "a") as out:
    out.write(f"{os.environ['TRAINING_JOB_NAME']} {time.time()}\\n")
"""
ACCOUNT = "bench"
FINAL = ("Completed", "Failed", "Stopped")


def bare_start() -> int:
    start = time.perf_counter_ns()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    return time.perf_counter_ns() - start


def bundle(folder: Path) -> Path:
    path = folder / "sourcedir.tar.gz"
    with tarfile.open(path, "w:gz") as archive:
        data = SCRIPT.encode()
        info = tarfile.TarInfo("train.py")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    return path


def spec(name: str, starts: Path) -> dict[str, object]:
    return {
        "name": name,
        "code": {
            "source_uri": f"ketch://{ACCOUNT}/code/sourcedir.tar.gz",
            "entry_point": "train.py",
        },
        "output_uri": f"ketch://{ACCOUNT}/jobs/",
        "environment": {"BENCH_STARTS": str(starts)},
    }


def submit(client: Client, name: str, starts: Path) -> float:
    sent = time.time()
    client.request("POST", f"/api/v1/accounts/{ACCOUNT}/training-jobs", json=spec(name, starts))
    return sent


def wait_all(client: Client, names: list[str], timeout: float) -> dict[str, str]:
    """The final status of each job, polling one listing page (cheap for the server) every
    50 ms, so that the measurement does not load the machine it measures."""
    deadline = time.monotonic() + timeout
    wanted = set(names)
    final: dict[str, str] = {}
    while time.monotonic() < deadline:
        page = client.request(
            "GET", f"/api/v1/accounts/{ACCOUNT}/training-jobs", params={"max_results": 1000}
        ).json()
        final = {j["name"]: j["status"] for j in page["items"] if j["name"] in wanted}
        if all(final.get(name) in FINAL for name in names):
            break
        time.sleep(0.05)
    return {name: status for name, status in final.items() if status in FINAL}


def started_at(starts: Path) -> dict[str, float]:
    found: dict[str, float] = {}
    for line in starts.read_text().splitlines() if starts.exists() else []:
        name, at = line.split()
        found[name] = float(at)
    return found


def bench_latency(client: Client, starts: Path, samples: int) -> tuple[Stats, Stats]:
    latencies: list[int] = []
    bare: list[int] = []
    for i in range(samples):
        name = f"latency-{i}"
        sent = submit(client, name, starts)
        wait_all(client, [name], 60)
        latencies.append(int((started_at(starts)[name] - sent) * 1e9))
        bare.append(bare_start())
    return summarise("submit to user code (one job at a time)", latencies), summarise(
        "bare `python -c pass` start", bare
    )


def bench_throughput(client: Client, starts: Path, count: int) -> tuple[float, float, int]:
    names = [f"batch-{i}" for i in range(count)]
    begin = time.monotonic()
    for name in names:
        submit(client, name, starts)
    final = wait_all(client, names, 60 + count * 2)
    ours = time.monotonic() - begin
    completed = sum(1 for s in final.values() if s == "Completed")
    begin = time.monotonic()
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda _: bare_start(), range(count)))
    floor = time.monotonic() - begin
    return ours, floor, completed


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    samples, count = (10, 40) if args.quick else (30, 200)
    with tempfile.TemporaryDirectory(prefix="ketch-bench-jobs-") as scratch:
        home = Path(scratch) / "home"
        starts = Path(scratch) / "starts.txt"
        env = {
            "KETCH_JOBS__PER_ACCOUNT": "2",
            "KETCH_JOBS__DEFAULT_PER_INSTANCE_TYPE": "2",
        }
        with live_server(home, None, env) as (url, token), Client(url=url, token=token) as client:
            client.accounts.create(ACCOUNT, stage="dev")
            client.artifacts.upload(
                bundle(Path(scratch)), f"ketch://{ACCOUNT}/code/sourcedir.tar.gz"
            )
            latency, bare = bench_latency(client, starts, samples)
            ours, floor, completed = bench_throughput(client, starts, count)
    print(f"python {sys.version.split()[0]}; {samples} latency samples; {count} jobs\n")
    print("| case | samples | p50 ms | p99 ms | mean ms |")
    print("|---|---:|---:|---:|---:|")
    for row in (latency, bare):
        print(
            f"| {row.name} | {row.samples} | {row.p50_us / 1000:.1f} | "
            f"{row.p99_us / 1000:.1f} | {row.mean_us / 1000:.1f} |"
        )
    ratio = latency.p50_us / bare.p50_us
    print(f"\nsubmit-to-user-code p50 / bare start p50 = {ratio:.1f}x (goal: within 3x)")
    print(
        f"{count} trivial jobs at 2 concurrent: {ours:.1f} s ({completed} completed); "
        f"{count} bare starts at 2 concurrent: {floor:.1f} s; ratio {ours / floor:.1f}x "
        "(goal: under 1.5x)"
    )
    print(f"per job: {ours / count * 1000:.0f} ms; per bare start: {floor / count * 1000:.0f} ms")


if __name__ == "__main__":
    main()
