"""`flashgate gate` / `flashgate relay` as real processes for tests: spawn, readiness, signals, logs.

Each process runs in its own session (process group), so a kill reaches the granian workers too
and nothing outlives the test that started it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx

from flashgate.settings import variable
from gate.settings import GateSettings
from ops.stack.ports import free_port
from tests.support.poll import eventually
from tests.support.stackctl import FLASHGATE, StackHandle


@dataclass
class FlashgateProcess:
    """One `flashgate …` subprocess in its own process group, logging to `log_path`."""

    proc: subprocess.Popen[bytes]
    log_path: Path
    log_file: IO[bytes] = field(repr=False)

    @classmethod
    def spawn(
        cls,
        args: list[str],
        env: dict[str, str],
        log_path: Path,
        *,
        executable: str = FLASHGATE,
        cwd: Path | None = None,
    ) -> FlashgateProcess:
        """Start `executable args` (by default this venv's `flashgate`), in `cwd` if given."""
        log = open(log_path, "ab")  # noqa: SIM115 - close() closes it
        proc = subprocess.Popen(
            [executable, *args], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=cwd
        )
        return cls(proc=proc, log_path=log_path, log_file=log)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL the whole process group, as a crash would, and reap it."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def terminate(self, timeout_s: float = 30) -> int:
        """SIGTERM and wait for the exit code."""
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout_s)

    def close(self) -> None:
        """Kill whatever still runs and release the log file (for fixture teardown)."""
        if self.proc.poll() is None:
            self.kill()
        else:  # the leader exited; granian workers must not outlive it
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        self.log_file.close()


def gate_env(stack: StackHandle, **settings: object) -> dict[str, str]:
    """Environment for a gate/relay on `stack`, auth off; `settings` (GateSettings fields, or `relay`)
    become their variables (FLASHGATE_TOPIC, FLASHGATE_GATE_<NAME>)."""
    return {
        **os.environ,
        **stack.env,
        "FLASHGATE_GATE_AUTH": "off",
        **{variable(GateSettings, k): str(v) for k, v in settings.items()},
    }


@dataclass
class GateProcess(FlashgateProcess):
    """`flashgate gate` on a free port; `base_url` is where to send orders."""

    base_url: str = ""

    @classmethod
    def start(
        cls,
        stack: StackHandle,
        log_path: Path,
        workers: int = 1,
        settings: dict[str, object] | None = None,
        *,
        executable: str = FLASHGATE,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> GateProcess:
        """Spawn the gate (`settings` as FLASHGATE_<NAME>) and wait until /health/ready answers 200.

        `executable`, `cwd` and `env` (overriding the test's environment) run another installation
        of flashgate (tests/e2e/test_wheel.py).
        """
        port = free_port()
        env = {**gate_env(stack, **(settings or {})), **(env or {})}
        log = open(log_path, "ab")  # noqa: SIM115 - close() closes it
        proc = subprocess.Popen(
            [executable, "gate", "--workers", str(workers), "--port", str(port)],
            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=cwd,
        )  # fmt: skip
        gate = cls(proc=proc, log_path=log_path, log_file=log, base_url=f"http://127.0.0.1:{port}")
        try:
            eventually(lambda: gate.ready() or gate.proc.poll() is not None, timeout_s=60, interval_s=0.1)
            assert gate.proc.poll() is None, f"gate exited {gate.proc.returncode}: {gate.log()[-2000:]}"
        except BaseException:
            gate.close()
            raise
        return gate

    def ready(self) -> bool:
        try:
            return httpx.get(f"{self.base_url}/health/ready", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False
