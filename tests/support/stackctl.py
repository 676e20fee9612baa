"""Drive the project's own launcher from tests: `flashgate stack …` as a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

FLASHGATE = str(Path(sys.executable).parent / "flashgate")


def flashgate(*args: str, timeout_s: float = 300, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the `flashgate` CLI; with `check`, fail with its output on a non-zero exit."""
    done = subprocess.run([FLASHGATE, *args], capture_output=True, text=True, timeout=timeout_s, check=False)
    if check and done.returncode != 0:
        raise AssertionError(f"flashgate {' '.join(args)} exited {done.returncode}: {done.stdout}{done.stderr}")
    return done


@dataclass(frozen=True)
class StackHandle:
    """A running stack: its state folder and the connection settings it prints."""

    state_dir: Path
    env: dict[str, str]

    @property
    def redis_url(self) -> str:
        return self.env["REDIS_URL"]

    @property
    def database_url(self) -> str:
        return self.env["DATABASE_URL"]

    @property
    def kafka_bootstrap(self) -> str:
        return self.env["KAFKA_BOOTSTRAP"]

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """`flashgate stack <args> --state-dir <this stack>`."""
        return flashgate("stack", *args, "--state-dir", str(self.state_dir), check=check)

    def pids(self) -> dict[str, int | None]:
        """Service name → pid, from `stack status` (None when stopped)."""
        lines = self.run("status", check=False).stdout.splitlines()[1:]
        return {f[0]: (int(f[2]) if f[2].isdigit() else None) for f in (ln.split() for ln in lines)}

    @classmethod
    def up(cls, state_dir: Path, *extra: str) -> StackHandle:
        flashgate("stack", "up", "--state-dir", str(state_dir), "--free-ports", *extra)
        env = json.loads(flashgate("stack", "env", "--json", "--state-dir", str(state_dir)).stdout)
        return cls(state_dir=state_dir, env=env)
