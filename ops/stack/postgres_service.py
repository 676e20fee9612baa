"""PostgreSQL from Debian's packages: initdb into the state folder, pg_ctl start, migrations."""

from __future__ import annotations

import asyncio
import glob
import os
import pwd
import shutil
import stat
import subprocess
from pathlib import Path

import asyncpg
import psutil

from ops import migrate
from ops.stack import process
from ops.stack.errors import MissingDependency, ServiceFailed, StackConfigError
from ops.stack.service import Service

DATABASE = "flashgate"
SUPERUSER = "flashgate"
# PostgreSQL refuses to run as root; when the launcher is root the server runs as this user.
SERVICE_USER = "postgres"


def find_bindir() -> Path:
    """The newest installed PostgreSQL server's bin folder (`FLASHGATE_PG_BINDIR` overrides)."""
    override = os.environ.get("FLASHGATE_PG_BINDIR")
    candidates = [override] if override else []
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version_key, reverse=True)
    found = shutil.which("pg_ctl")
    if found:
        candidates.append(str(Path(found).resolve().parent))
    for c in candidates:
        if c and (Path(c) / "pg_ctl").exists() and (Path(c) / "initdb").exists():
            return Path(c)
    raise MissingDependency(
        "PostgreSQL server not found: install it with `sudo apt-get install -y postgresql` (or set FLASHGATE_PG_BINDIR)"
    )


def _version_key(path: str) -> int:
    part = Path(path).parent.name
    return int(part) if part.isdigit() else 0


class PostgresService(Service):
    name = "postgres"
    port_setting = "postgres_port"
    start_timeout_s = 60.0

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def socket_dir(self) -> Path:
        return self.home / "run"

    @property
    def run_as(self) -> str | None:
        return SERVICE_USER if os.geteuid() == 0 else None

    def check_installed(self) -> None:
        find_bindir()

    def pid(self) -> int | None:
        try:
            pid = int((self.data_dir / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        return pid if process.is_alive(pid) and _is_postgres(pid) else None

    def prepare(self) -> None:
        if self.run_as:
            _check_reachable(self.home, self.run_as)
        self.socket_dir.mkdir(exist_ok=True)
        self._own(self.home, self.socket_dir, self.log_path)
        if (self.data_dir / "PG_VERSION").exists():
            return
        self.data_dir.mkdir(exist_ok=True)
        self._own(self.data_dir)
        self._run(
            "initdb", "-D", str(self.data_dir), "-U", SUPERUSER, "--auth=trust",
            "-E", "UTF8", "--no-locale", "--no-instructions",
        )  # fmt: skip

    def launch(self) -> None:
        # After a SIGKILL the old postmaster can linger as an unreaped zombie, which
        # PostgreSQL's own lock-file check takes for a live server; pid() has already
        # established that no live postmaster owns the folder, so the lock files are stale.
        (self.data_dir / "postmaster.pid").unlink(missing_ok=True)
        for stale in self.socket_dir.glob(".s.PGSQL.*"):
            stale.unlink(missing_ok=True)
        options = " ".join(
            [
                f"-c port={self.port}",
                "-c listen_addresses=127.0.0.1",
                f"-c unix_socket_directories={self.socket_dir}",
                "-c max_connections=200",
                "-c shared_buffers=256MB",
            ]
        )
        self._run(
            "pg_ctl", "start", "-D", str(self.data_dir), "-l", str(self.log_path),
            "-o", options, "-w", "-t", str(int(self.start_timeout_s)),
        )  # fmt: skip

    def probe(self) -> bool:
        return asyncio.run(self._probe())

    async def _probe(self) -> bool:
        try:
            conn = await asyncpg.connect(
                host="127.0.0.1", port=self.port, user=SUPERUSER, database="postgres", timeout=2
            )
        except (TimeoutError, OSError, asyncpg.PostgresError):
            return False
        await conn.close()
        return True

    def after_ready(self) -> None:
        asyncio.run(self._create_database_and_migrate())

    async def _create_database_and_migrate(self) -> None:
        conn = await asyncpg.connect(host="127.0.0.1", port=self.port, user=SUPERUSER, database="postgres")
        try:
            exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", DATABASE)
            if not exists:
                await conn.execute(f'CREATE DATABASE "{DATABASE}"')
        finally:
            await conn.close()
        await migrate.apply_all(self.settings.database_url)

    def stop(self, timeout_s: float | None = None) -> None:
        if self.pid() is None:
            return
        wait_s = self.stop_timeout_s if timeout_s is None else timeout_s
        try:
            self._run("pg_ctl", "stop", "-D", str(self.data_dir), "-m", "fast", "-w", "-t", str(int(wait_s)))
        except ServiceFailed:
            # A postmaster that will not stop is killed with its backends, like a crash;
            # the next start runs crash recovery from the WAL.
            self.kill()

    def _run(self, tool: str, *args: str) -> None:
        argv = [str(find_bindir() / tool), *args]
        done = subprocess.run(argv, user=self.run_as, capture_output=True, text=True, cwd="/", check=False)
        if done.returncode != 0:
            detail = (done.stderr or done.stdout).strip().splitlines()
            reason = detail[-1] if detail else str(done.returncode)
            if "Examine the log output" in reason:
                reason = f"{process.last_line(self.log_path)} (see {self.log_path})"
            raise ServiceFailed(f"postgres: {tool} failed: {reason}")

    def _own(self, *paths: Path) -> None:
        if not self.run_as:
            return
        entry = pwd.getpwnam(self.run_as)
        for p in paths:
            if not p.exists():
                p.touch()
            os.chown(p, entry.pw_uid, entry.pw_gid)


def _is_postgres(pid: int) -> bool:
    try:
        return psutil.Process(pid).name() in {"postgres", "postmaster"}
    except psutil.Error:
        return False


def _check_reachable(path: Path, user: str) -> None:
    """The server user must be able to walk down to the state folder (e.g. not under /root)."""
    try:
        pwd.getpwnam(user)
    except KeyError as e:
        raise MissingDependency(
            f"user {user!r} not found: install PostgreSQL with `sudo apt-get install -y postgresql`"
        ) from e
    for parent in [*reversed(path.parents)]:
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            raise StackConfigError(
                f"the state folder {path} is under {parent}, which the {user} user cannot enter; "
                "choose --state-dir elsewhere (e.g. /tmp/flashgate-stack) or `chmod o+x` it"
            )
