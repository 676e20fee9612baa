"""Start and stop the servers a benchmark loads: `flashgate gate` or the bare endpoint, as subprocesses.

Both use the same server (granian, uvloop) and process count, so their throughputs compare.
"""

from __future__ import annotations

import os
import platform
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path

import httpx
import psutil

BIN = Path(sys.executable).parent
FLASHGATE = str(BIN / "flashgate")


class ServeError(RuntimeError):
    """A server did not come up (its log tail is in the message)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _wait_http(url: str, proc: subprocess.Popen[bytes], log: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise ServeError(f"{url} not ready within {timeout_s} s; log {log}:\n{log.read_text(errors='replace')[-2000:]}")


@contextmanager
def serve(
    argv: list[str],
    ready_url: str,
    log: Path,
    env: Mapping[str, str] | None = None,
    timeout_s: float = 60,
    cwd: Path | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """Run `argv` until the block ends (SIGTERM, then SIGKILL after 30 s); ready when `ready_url` is 200."""
    with log.open("ab") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}, cwd=cwd)
        try:
            _wait_http(ready_url, proc, log, timeout_s)
            yield proc
        finally:
            stop(proc)


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM (the process finishes what it has in hand), then SIGKILL after 30 s."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def gate_argv(port: int, workers: int) -> list[str]:
    return [FLASHGATE, "gate", "--workers", str(workers), "--port", str(port)]


def bare_argv(port: int, workers: int) -> list[str]:
    return [str(BIN / "granian"), "--interface", "asgi", "--workers", str(workers), "--loop", "uvloop",
            "--port", str(port), "--log-level", "warning", "--factory", "bench.bare:create_app"]  # fmt: skip


def box_snapshot(top: int = 8) -> dict[str, object]:
    """What else runs on the box: load averages and the busiest processes right now."""
    procs = list(psutil.process_iter(["pid", "name", "cmdline"]))
    for p in procs:
        with suppress(psutil.Error):
            p.cpu_percent(None)
    time.sleep(0.5)
    busy = []
    for p in procs:
        with suppress(psutil.Error):
            busy.append((p.cpu_percent(None), p.info["pid"], " ".join(p.info["cmdline"] or [p.info["name"]])[:120]))
    busy.sort(reverse=True)
    return {
        "loadavg": os.getloadavg(),
        "busiest": [{"cpu_pct": c, "pid": pid, "cmd": cmd} for c, pid, cmd in busy[:top]],
    }


def run_header(sku: str, settings: Mapping[str, object]) -> dict[str, object]:
    """What a benchmark's raw result opens with: when, the SKU, the machine, the settings, the box before the load."""
    return {
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "sku": sku,
        "machine": machine(),
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in settings.items()},
        "box_before": box_snapshot(),
    }


def machine() -> dict[str, object]:
    """Cores, CPU model, OS and the versions that matter for the figures."""
    model = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    from importlib.metadata import version

    versions = {pkg: version(pkg) for pkg in ("litestar", "granian", "redis", "confluent-kafka", "asyncpg", "msgspec")}
    try:
        done = subprocess.run(["wrk", "--version"], capture_output=True, text=True, check=False)
        wrk = (done.stdout or done.stderr).split("\n")[0]
    except OSError:
        wrk = "absent"
    return {
        "cores": os.cpu_count(),
        "cpu_model": model,
        "os": platform.platform(),
        "python": platform.python_version(),
        "versions": {**versions, "wrk": wrk.strip()},
    }
