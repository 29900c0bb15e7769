"""Load benchmark of the backend: 200 concurrent run requests against 20 flows.

Generates a project of 20 cheap flows (a one-row CSV into an xlsx each), starts
the app under waitress in a child process the way production does
(``waitress-serve --call sheets_addon.server:create_app_from_env``), creates an
API key, then releases 200 threads at once, each posting
``POST /api/v1/flows/<flow>/runs`` (10 per flow). Reports p50, p99 and max
latency, the answers by status, and the number of runs created, which must be
exactly 20 (one per flow; the other 180 requests get the active run back).

    .venv/bin/python benchmarks/server_load.py --output load.md

The client threads share the machine with the server, so on a small machine
the figures include the client's own CPU use.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

FLOWS = 20
REQUESTS_PER_FLOW = 10
TARGET_P99_MS = 100.0


def write_project(root: Path, flows: int) -> None:
    lines = ["version: 1", "project: load", "systems:"]
    for index in range(flows):
        # The path is read from a FIFO when a run starts, so every run waits
        # until every request got its response, and the 20 runs stay active.
        lines.append(f"  src{index}: {{kind: csv, path: \"${{file:gates/{index}}}\"}}")
        lines.append(f"  out{index}: {{kind: sheets, spreadsheet:"
                     f" out/report{index}.xlsx}}")
    lines.append("entities:")
    for index in range(flows):
        lines += [f"  row{index}:", "    key: id", "    fields:",
                  f"      id: {{type: integer, owner: src{index}}}",
                  f"      name: {{type: string, owner: src{index}}}"]
    lines.append("flows:")
    for index in range(flows):
        lines += [f"  flow{index}:",
                  f"    source: {{system: src{index}}}",
                  f"    map: {{entity: row{index}, fields: {{id: id, name: name}}}}",
                  f"    destinations: [{{system: out{index}, object: Rows,"
                  " mode: upsert}]"]
    (root / "data").mkdir(parents=True)
    (root / "gates").mkdir()
    (root / "syncplan.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    for index in range(flows):
        (root / "data" / f"rows{index}.csv").write_text("id,name\n1,one\n",
                                                        encoding="utf-8")
        os.mkfifo(root / "gates" / str(index))


def open_gates(root: Path, flows: int, timeout: float = 60.0) -> int:
    """Feed each gate FIFO its CSV path as its run starts; return the runs fed."""
    waiting = set(range(flows))
    deadline = time.monotonic() + timeout
    while waiting and time.monotonic() < deadline:
        for index in sorted(waiting):
            try:
                descriptor = os.open(root / "gates" / str(index),
                                     os.O_WRONLY | os.O_NONBLOCK)
            except OSError:  # no run is reading this gate yet
                continue
            with os.fdopen(descriptor, "w") as gate:
                gate.write(f"data/rows{index}.csv\n")
            waiting.discard(index)
        time.sleep(0.02)
    return flows - len(waiting)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(root: Path, state: Path, port: int, threads: int,
                 workers: int, server: str = "waitress",
                 processes: int = 2) -> subprocess.Popen[bytes]:
    env = {**os.environ, "SYNCPLAN_PROJECT": str(root), "SYNCPLAN_STATE": str(state),
           "SYNCPLAN_DEV": "1", "SYNCPLAN_WORKERS": str(workers),
           # One API key sends all 200 requests, above the default burst.
           "SYNCPLAN_RATE_LIMIT_BURST": "1000"}
    if server == "gunicorn":
        # One process per core: a single Python process serves on one core only.
        command = [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}",
                   "--workers", str(processes), "--threads", str(threads),
                   "--backlog", "512", "sheets_addon.server:create_app_from_env()"]
    else:
        command = [sys.executable, "-m", "waitress", f"--listen=127.0.0.1:{port}",
                   f"--threads={threads}", "--connection-limit=500", "--call",
                   "sheets_addon.server:create_app_from_env"]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if requests.get(f"http://127.0.0.1:{port}/healthz",
                            timeout=1).status_code == 200:
                return process
        except requests.RequestException:  # not listening yet, or still starting
            time.sleep(0.1)
    process.kill()
    raise SystemExit("the server did not start within 60 s")


def create_key(state: Path) -> str:
    result = subprocess.run([sys.executable, "-m", "sheets_addon", "keys", "create",
                             "--name", "load", "--state", str(state)],
                            capture_output=True, text=True, check=True)
    return result.stdout.strip()


def fire(port: int, key: str, flows: int, per_flow: int
         ) -> tuple[list[float], list[int]]:
    """Send every POST at once over connections opened beforehand.

    The client is one asyncio loop writing raw HTTP/1.1, because 200 client
    threads with ``requests`` would take most of the two cores from the server
    they measure. Each latency runs from the request's first byte to the end of
    its response.
    """
    return asyncio.run(_fire(port, key, flows * per_flow, flows))


async def _fire(port: int, key: str, total: int, flows: int
                ) -> tuple[list[float], list[int]]:
    connections = [await asyncio.open_connection("127.0.0.1", port)
                   for _ in range(total)]
    requests_bytes = [
        (f"POST /api/v1/flows/flow{index % flows}/runs HTTP/1.1\r\n"
         f"Host: 127.0.0.1:{port}\r\nX-Api-Key: {key}\r\n"
         "Content-Length: 0\r\nConnection: close\r\n\r\n").encode("ascii")
        for index in range(total)]

    async def one(index: int) -> tuple[float, int]:
        reader, writer = connections[index]
        started = time.perf_counter()
        writer.write(requests_bytes[index])
        await writer.drain()
        answer = await reader.read()
        elapsed = (time.perf_counter() - started) * 1000
        writer.close()
        status = int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/") else 0
        return elapsed, status

    results = await asyncio.gather(*(one(index) for index in range(total)))
    return [r[0] for r in results], [r[1] for r in results]


def wait_for_runs(state: Path, flows: int, timeout: float = 120.0) -> int:
    """Wait until no job is active; return the number of runs created."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with sqlite3.connect(state) as db:
            total, active = db.execute(
                "SELECT COUNT(*), SUM(status IN ('queued', 'running')) FROM jobs"
            ).fetchone()
        if not active:
            return int(total)
        time.sleep(0.1)
    raise SystemExit(f"runs still active after {timeout} s")


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def report(latencies: list[float], statuses: list[int], runs: int,
           arguments: argparse.Namespace) -> str:
    by_status = {status: statuses.count(status) for status in sorted(set(statuses))}
    p99 = percentile(latencies, 0.99)
    machine = (f"{platform.system()} {platform.release()}, {os.cpu_count()} CPU(s),"
               f" Python {platform.python_version()}")
    return "\n".join([
        "## Backend load: concurrent run requests",
        "",
        f"- machine: {machine}",
        f"- command: `.venv/bin/python benchmarks/server_load.py --server"
        f" {arguments.server} --processes {arguments.processes} --threads"
        f" {arguments.threads} --workers {arguments.workers}`",
        f"- load: {len(latencies)} concurrent POST /api/v1/flows/<flow>/runs,"
        f" {arguments.per_flow} per flow, {arguments.flows} flows, API-key auth,"
        f" sent at once by one asyncio client over connections opened beforehand",
        f"- server: {_server_text(arguments)}, {arguments.workers} run workers"
        " per process",
        "",
        "| figure | value |",
        "| --- | --- |",
        f"| p50 latency | {percentile(latencies, 0.50):.1f} ms |",
        f"| p99 latency | {p99:.1f} ms |",
        f"| max latency | {max(latencies):.1f} ms |",
        f"| mean latency | {statistics.fmean(latencies):.1f} ms |",
        f"| answers | {', '.join(f'{n} x {s}' for s, n in by_status.items())} |",
        f"| runs created | {runs} (expected {arguments.flows}) |",
        f"| p99 under {TARGET_P99_MS:.0f} ms | {'yes' if p99 < TARGET_P99_MS else 'no'}"
        " |",
        "",
    ])


def _server_text(arguments: argparse.Namespace) -> str:
    if arguments.server == "gunicorn":
        return (f"gunicorn, {arguments.processes} processes of {arguments.threads}"
                " threads")
    return f"waitress, one process of {arguments.threads} threads"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--flows", type=int, default=FLOWS)
    parser.add_argument("--per-flow", type=int, default=REQUESTS_PER_FLOW)
    parser.add_argument("--threads", type=int, default=16,
                        help="request threads (per process for gunicorn)")
    parser.add_argument("--workers", type=int, default=2, help="run workers")
    parser.add_argument("--server", choices=["waitress", "gunicorn"],
                        default="gunicorn", help="WSGI server")
    parser.add_argument("--processes", type=int, default=2,
                        help="gunicorn worker processes")
    parser.add_argument("--output", type=Path, help="also write the markdown here")
    arguments = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="syncplan-load-"))
    try:
        root = folder / "project"
        write_project(root, arguments.flows)
        state = folder / "state.db"
        key = create_key(state)
        port = free_port()
        server = start_server(root, state, port, arguments.threads, arguments.workers,
                              arguments.server, arguments.processes)
        try:
            latencies, statuses = fire(port, key, arguments.flows, arguments.per_flow)
            fed = open_gates(root, arguments.flows)
            runs = wait_for_runs(state, arguments.flows)
        finally:
            server.terminate()
            server.wait(timeout=30)
        if fed != arguments.flows:
            raise SystemExit(f"only {fed} of {arguments.flows} runs started")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    text = report(latencies, statuses, runs, arguments)
    print(text)
    if arguments.output:
        arguments.output.write_text(text, encoding="utf-8")
    if runs != arguments.flows:
        raise SystemExit(f"{runs} runs were created, expected {arguments.flows}")


if __name__ == "__main__":
    main()
