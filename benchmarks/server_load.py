"""Load benchmark of the backend: 200 concurrent run requests against 20 flows.

Generates a project of 20 cheap flows (a one-row CSV into an xlsx each), starts
the app in a child process the way production does (gunicorn with
``'sheets_addon.server:create_app_from_env()'`` by default, or
``waitress-serve --call``), creates an API key, opens 200 connections, then
sends ``POST /api/v1/flows/<flow>/runs`` on all of them at once (10 per flow).
Reports p50, p99 and max latency, the responses by status, the number of runs
created, which must be exactly 20 (one per flow; the other 180 requests get the
active run back), and the CPU time the server and the client used during the
burst. ``--repeat N`` measures N times, each with a fresh server and state
file, and reports every run.

    .venv/bin/python benchmarks/server_load.py --repeat 5 --output load.md

The client shares the machine with the server, so on a small machine the
figures include the client's own CPU use. The report shows how much it was.
"""

from __future__ import annotations

import argparse
import os
import platform
import selectors
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import requests

FLOWS = 20
REQUESTS_PER_FLOW = 10
TARGET_P99_MS = 100.0


@dataclass
class Measurement:
    """One burst: latencies in ms, statuses, runs created, CPU ms used."""

    latencies: list[float]
    statuses: list[int]
    runs: int
    server_cpu_ms: float | None
    client_cpu_ms: float

    @property
    def p50(self) -> float:
        return percentile(self.latencies, 0.50)

    @property
    def p99(self) -> float:
        return percentile(self.latencies, 0.99)


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
                 workers: int, server: str = "gunicorn",
                 processes: int = 2) -> subprocess.Popen[bytes]:
    env = {**os.environ, "SYNCPLAN_PROJECT": str(root), "SYNCPLAN_STATE": str(state),
           "SYNCPLAN_DEV": "1", "SYNCPLAN_WORKERS": str(workers),
           # One API key sends all 200 requests, above the default burst.
           "SYNCPLAN_RATE_LIMIT_BURST": "1000"}
    if server == "gunicorn":
        # One process per core, because a Python process serves on one core.
        # With --threads 1 gunicorn uses its sync worker, one request at a
        # time per process; more threads switch it to the gthread worker.
        command = [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}",
                   "--workers", str(processes), "--threads", str(threads),
                   "--backlog", "512", "--no-control-socket",
                   "sheets_addon.server:create_app_from_env()"]
    else:
        command = [sys.executable, "-m", "waitress", f"--listen=127.0.0.1:{port}",
                   f"--threads={threads}", "--connection-limit=500", "--call",
                   "sheets_addon.server:create_app_from_env"]
    # The server logs a line per request. It is discarded, so that writing it
    # to this terminal does not add to the figures.
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

    The client is one thread with non-blocking sockets and a selector, because
    it shares the cores with the server it measures and this costs it the
    least CPU. Each latency runs from sending the request to receiving the last
    byte of the response body (by its Content-Length), as an HTTP client sees
    it. The server's closing of the connection afterwards is not waited for:
    gunicorn's gthread worker closes connections from its main loop, which
    under a burst lags the responses by up to the whole burst.
    """
    total = flows * per_flow
    connections = []
    for _ in range(total):
        connection = socket.create_connection(("127.0.0.1", port))
        connection.setblocking(False)
        connections.append(connection)
    payloads = [
        (f"POST /api/v1/flows/flow{index % flows}/runs HTTP/1.1\r\n"
         f"Host: 127.0.0.1:{port}\r\nX-Api-Key: {key}\r\n"
         "Content-Length: 0\r\nConnection: close\r\n\r\n").encode("ascii")
        for index in range(total)]
    selector = selectors.DefaultSelector()
    started = [0.0] * total
    for index, connection in enumerate(connections):
        started[index] = time.perf_counter()
        connection.sendall(payloads[index])  # small enough for the socket buffer
        selector.register(connection, selectors.EVENT_READ, index)
    latencies = [0.0] * total
    statuses = [0] * total
    received = [b""] * total
    pending = total
    while pending:
        ready = selector.select(timeout=60)
        if not ready:
            raise SystemExit(f"{pending} of {total} requests got no complete"
                             " response within 60 s")
        for selected, _events in ready:
            index = selected.data
            chunk = selected.fileobj.recv(65536)  # type: ignore[union-attr]
            received[index] += chunk
            status = _complete_status(received[index])
            if status is None and chunk:
                continue
            latencies[index] = (time.perf_counter() - started[index]) * 1000
            statuses[index] = status or 0
            selector.unregister(selected.fileobj)
            selected.fileobj.close()  # type: ignore[union-attr]
            pending -= 1
    selector.close()
    return latencies, statuses


def _complete_status(data: bytes) -> int | None:
    """Return the status of a whole HTTP response in ``data``, None while partial."""
    head, separator, body = data.partition(b"\r\n\r\n")
    if not separator:
        return None
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    if len(body) < length:
        return None
    return int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/") else 0


def process_tree_cpu_ms(pid: int) -> float | None:
    """Return the user and system CPU ms of ``pid`` and its children (Linux)."""
    ticks_per_second = os.sysconf("SC_CLK_TCK")
    total = 0
    found = False
    for entry in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = entry.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended meanwhile
            continue
        if int(entry.parent.name) == pid or int(fields[1]) == pid:
            total += int(fields[11]) + int(fields[12])
            found = True
    return total * 1000 / ticks_per_second if found else None


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


def measure(arguments: argparse.Namespace) -> Measurement:
    """Start a fresh server on a fresh project, fire one burst, stop the server."""
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
            time.sleep(1.0)  # let every server process finish starting
            server_before = process_tree_cpu_ms(server.pid)
            client_before = time.process_time()
            latencies, statuses = fire(port, key, arguments.flows,
                                       arguments.per_flow)
            client_cpu_ms = (time.process_time() - client_before) * 1000
            server_after = process_tree_cpu_ms(server.pid)
            fed = open_gates(root, arguments.flows)
            runs = wait_for_runs(state, arguments.flows)
        finally:
            server.terminate()
            server.wait(timeout=30)
        if fed != arguments.flows:
            raise SystemExit(f"only {fed} of {arguments.flows} runs started")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    server_cpu_ms = (server_after - server_before
                     if server_before is not None and server_after is not None
                     else None)
    return Measurement(latencies, statuses, runs, server_cpu_ms, client_cpu_ms)


def report(results: list[Measurement], arguments: argparse.Namespace) -> str:
    machine = (f"{platform.system()} {platform.release()}, {os.cpu_count()} CPU(s),"
               f" Python {platform.python_version()}")
    lines = [
        "## Backend load: concurrent run requests",
        "",
        f"- machine: {machine}",
        f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        f"- command: `.venv/bin/python benchmarks/server_load.py --server"
        f" {arguments.server} --processes {arguments.processes} --threads"
        f" {arguments.threads} --workers {arguments.workers} --repeat"
        f" {arguments.repeat}`",
        f"- load: {arguments.flows * arguments.per_flow} concurrent POST"
        f" /api/v1/flows/<flow>/runs, {arguments.per_flow} per flow,"
        f" {arguments.flows} flows, API-key auth, sent at once by one client"
        " thread over connections opened beforehand",
        f"- server: {_server_text(arguments)}, {arguments.workers} run workers"
        " per process, a fresh server and state file for each run",
        "",
        "| run | p50 ms | p99 ms | max ms | mean ms | answers | runs created"
        " | server CPU ms | client CPU ms |",
        "| ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: |",
    ]
    for number, result in enumerate(results, 1):
        by_status = {status: result.statuses.count(status)
                     for status in sorted(set(result.statuses))}
        server_cpu = (f"{result.server_cpu_ms:.0f}"
                      if result.server_cpu_ms is not None else "n/a")
        lines.append(
            f"| {number} | {result.p50:.1f} | {result.p99:.1f} |"
            f" {max(result.latencies):.1f} | {statistics.fmean(result.latencies):.1f}"
            f" | {', '.join(f'{n} x {s}' for s, n in by_status.items())} |"
            f" {result.runs} | {server_cpu} | {result.client_cpu_ms:.0f} |")
    under = sum(result.p99 < TARGET_P99_MS for result in results)
    exact = sum(result.runs == arguments.flows for result in results)
    p99s = sorted(result.p99 for result in results)
    lines += [
        "",
        f"p99 under {TARGET_P99_MS:.0f} ms in {under} of {len(results)} run(s)"
        f" (p99 from {p99s[0]:.1f} to {p99s[-1]:.1f} ms, median"
        f" {statistics.median(p99s):.1f} ms); exactly {arguments.flows} runs"
        f" created in {exact} of {len(results)}.",
        "",
    ]
    return "\n".join(lines)


def _server_text(arguments: argparse.Namespace) -> str:
    if arguments.server == "gunicorn":
        kind = "sync" if arguments.threads == 1 else "gthread"
        return (f"gunicorn {kind} worker, {arguments.processes} processes of"
                f" {arguments.threads} thread(s)")
    return f"waitress, one process of {arguments.threads} threads"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--flows", type=int, default=FLOWS,
                        help="flows in the generated project")
    parser.add_argument("--per-flow", type=int, default=REQUESTS_PER_FLOW,
                        help="requests sent for each flow")
    parser.add_argument("--threads", type=int, default=1,
                        help="request threads per process (gunicorn: 1 uses the"
                        " sync worker, more the gthread worker)")
    parser.add_argument("--workers", type=int, default=2,
                        help="run workers per process")
    parser.add_argument("--server", choices=["waitress", "gunicorn"],
                        default="gunicorn", help="WSGI server")
    parser.add_argument("--processes", type=int, default=2,
                        help="gunicorn worker processes")
    parser.add_argument("--repeat", type=int, default=1,
                        help="bursts to measure, each with a fresh server")
    parser.add_argument("--output", type=Path, help="also write the markdown here")
    arguments = parser.parse_args()
    if arguments.repeat < 1:
        parser.error(f"--repeat {arguments.repeat} is invalid; give 1 or more")

    results = [measure(arguments) for _ in range(arguments.repeat)]
    text = report(results, arguments)
    print(text)
    if arguments.output:
        arguments.output.write_text(text, encoding="utf-8")
    wrong = [result.runs for result in results if result.runs != arguments.flows]
    if wrong:
        raise SystemExit(f"runs created were {wrong}, expected {arguments.flows}")


if __name__ == "__main__":
    main()
