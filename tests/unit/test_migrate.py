"""Migration loading and planning (pure; the database side is in tests/integration)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from ops.cli import cli
from ops.migrate import Migration, MigrationError, load, plan


def write(folder: Path, name: str, sql: str = "SELECT 1;") -> None:
    (folder / name).write_text(sql)


def test_load_orders_by_number(tmp_path: Path) -> None:
    write(tmp_path, "010_later.sql")
    write(tmp_path, "002_first.sql")
    assert [m.name for m in load(tmp_path)] == ["002_first.sql", "010_later.sql"]


@pytest.mark.parametrize("bad", ["1_short.sql", "001-dash.sql", "001_Upper.sql"])
def test_misnamed_file_is_rejected(tmp_path: Path, bad: str) -> None:
    write(tmp_path, bad)
    with pytest.raises(MigrationError, match="NNN_description"):
        load(tmp_path)


def test_duplicate_version_is_rejected(tmp_path: Path) -> None:
    write(tmp_path, "001_a.sql")
    write(tmp_path, "001_b.sql")
    with pytest.raises(MigrationError, match="used twice"):
        load(tmp_path)


def test_plan_skips_applied() -> None:
    a, b = Migration("001", "001_a.sql", "A"), Migration("002", "002_b.sql", "B")
    assert plan([a, b], {}) == [a, b]
    assert plan([a, b], {"001": a.checksum}) == [b]


def test_plan_refuses_edited_migration() -> None:
    a = Migration("001", "001_a.sql", "A")
    with pytest.raises(MigrationError, match="changed after it was applied"):
        plan([a], {"001": "0" * 64})


def test_plan_refuses_missing_file() -> None:
    with pytest.raises(MigrationError, match="file is missing"):
        plan([], {"001": "x"})


def test_repository_migrations_load() -> None:
    assert load()[0].version == "001"


def test_empty_folder_is_an_error(tmp_path: Path) -> None:
    write(tmp_path, "notes.txt")
    with pytest.raises(MigrationError, match="no migrations found"):
        load(tmp_path)


def test_missing_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(MigrationError, match="cannot read the migrations folder"):
        load(tmp_path / "absent")


@pytest.mark.parametrize("folder", ["empty", "absent"])
def test_cli_without_migrations_exits_1_with_one_line(tmp_path: Path, folder: str) -> None:
    (tmp_path / "empty").mkdir()
    # Loading comes before connecting, so no database is needed to see the refusal.
    done = CliRunner().invoke(
        cli, ["migrate", "--sql-dir", str(tmp_path / folder), "--database-url", "postgresql://nobody@127.0.0.1:1/x"]
    )
    assert done.exit_code == 1
    lines = done.output.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("Error: migrate: ")
