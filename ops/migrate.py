"""Ordered SQL migrations from `flashgate/sql/`: each file applied once, in name order, tracked in the database.

The files ship inside the package (read with importlib.resources), so an installed wheel migrates
as a checkout does; finding none is an error, never "applied 0". Files are named
`NNN_description.sql`. An applied file whose text changed is an error, never re-applied
silently: write a new migration instead. Concurrent runners serialise on an
advisory lock, so two processes starting at once apply each migration exactly once.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib.resources import files
from importlib.resources.abc import Traversable

import asyncpg

SQL_DIR = files("flashgate") / "sql"
_NAME = re.compile(r"^(\d{3,})_[a-z0-9_]+\.sql$")
_LOCK_ID = 0x666C617368  # "flash": one advisory lock id for every migration runner


class MigrationError(Exception):
    """A migration folder or history that cannot be applied safely."""


@dataclass(frozen=True)
class Migration:
    version: str
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def load(sql_dir: Traversable = SQL_DIR) -> list[Migration]:
    """Every migration file in version order.

    Raises MigrationError for a missing or empty folder (a broken install, not a database with
    nothing to do), a misnamed file or a version used twice.
    """
    found: dict[str, Migration] = {}
    try:
        paths = sorted((p for p in sql_dir.iterdir() if p.name.endswith(".sql")), key=lambda p: p.name)
    except OSError as e:
        raise MigrationError(f"cannot read the migrations folder {sql_dir}: {e.strerror or e}") from e
    if not paths:
        raise MigrationError(f"no migrations found in {sql_dir}")
    for path in paths:
        m = _NAME.match(path.name)
        if m is None:
            raise MigrationError(f"{path.name}: migration files must be named NNN_description.sql")
        version = m.group(1)
        if version in found:
            raise MigrationError(f"{path.name}: version {version} is used twice")
        found[version] = Migration(version=version, name=path.name, sql=path.read_text())
    return [found[v] for v in sorted(found, key=int)]


def plan(available: list[Migration], applied: dict[str, str]) -> list[Migration]:
    """The migrations still to apply, given applied {version: checksum}; pure, no I/O.

    Raises MigrationError when an applied file changed or disappeared.
    """
    by_version = {m.version: m for m in available}
    for version, checksum in applied.items():
        if version not in by_version:
            raise MigrationError(f"migration {version} is applied but its file is missing")
        if by_version[version].checksum != checksum:
            raise MigrationError(
                f"{by_version[version].name} changed after it was applied; add a new migration instead"
            )
    return [m for m in available if m.version not in applied]


async def apply_all(database_url: str, sql_dir: Traversable = SQL_DIR) -> list[str]:
    """Apply pending migrations, each in its own transaction; return the names applied."""
    available = load(sql_dir)
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                   version text PRIMARY KEY,
                   name text NOT NULL,
                   checksum text NOT NULL,
                   applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_ID)
        try:
            rows = await conn.fetch("SELECT version, checksum FROM schema_migrations")
            pending = plan(available, {r["version"]: r["checksum"] for r in rows})
            for m in pending:
                async with conn.transaction():
                    await conn.execute(m.sql)
                    await conn.execute(
                        "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                        m.version,
                        m.name,
                        m.checksum,
                    )
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_ID)
    finally:
        await conn.close()
    return [m.name for m in pending]
