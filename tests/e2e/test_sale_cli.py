"""`flashgate sale …` end to end: every command, every refusal, and a half-way failure repaired."""

from __future__ import annotations

import json
import os
import subprocess
from importlib.metadata import version

import pytest

from flashgate import names
from gate.admission import AdmitRequest, Code
from ops.stack.ports import free_port
from tests.support.gatekit import admission_client, redis_client
from tests.support.oncall import oncall
from tests.support.stackctl import FLASHGATE, StackHandle


def create(stack: StackHandle, sku: str, *extra: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    done = oncall(stack, "sale", "create", "--sku", sku, "--name", "Shoe", *extra, env=env)
    return done.returncode, (done.stdout + done.stderr).strip()


def test_create_list_show_add_stock_close(stack: StackHandle, name: str) -> None:
    args = ("--stock", "10", "--per-user-limit", "2", "--rate", "5", "--burst", "5", "--ends-at", "2099-01-01T00:00")
    assert create(stack, name, *args) == (0, f"sale {name} created: 10 units, open")
    listed = oncall(stack, "sale", "list")
    assert any(line.split()[:5] == [name, "open", "10", "0", "10"] for line in listed.stdout.splitlines())

    shown = json.loads(oncall(stack, "sale", "show", name, "--json").stdout)
    assert shown["ends_at"] == "2099-01-01T00:00:00+00:00"
    assert (shown["units_on_sale"], shown["redis_stock"], shown["per_user_limit"], shown["burst"]) == (10, 10, 2, 5)

    added = oncall(stack, "sale", "add-stock", name, "5")
    assert (added.returncode, added.stdout.strip()) == (0, f"sale {name}: 15 units on sale now (+5)")
    assert json.loads(oncall(stack, "sale", "show", name, "--json").stdout)["redis_stock"] == 15

    assert oncall(stack, "sale", "close", name).returncode == 0
    assert json.loads(oncall(stack, "sale", "show", name, "--json").stdout)["status"] == "closed"


async def test_a_closed_sale_answers_sale_ended(stack: StackHandle, name: str) -> None:
    assert create(stack, name, "--stock", "3")[0] == 0
    assert oncall(stack, "sale", "close", name).returncode == 0
    async with admission_client(stack) as (client, _):
        got = await client.admit(AdmitRequest(name, "u", "k", 1))
    assert got.code is Code.ENDED


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--stock", "-1"), "--stock must be >= 0, not -1"),
        (
            ("--stock", "5", "--starts-at", "2026-12-02", "--ends-at", "2026-12-01"),
            "--ends-at must be after --starts-at",
        ),
        (("--stock", "5", "--starts-at", "next tuesday"), "--starts-at: not an ISO 8601 time"),
        (("--stock", "5", "--rate", "5"), "--rate and --burst go together"),
        (("--stock", "5", "--rate", "0", "--burst", "1"), "--rate must be > 0"),
        (("--stock", "5", "--per-user-limit", "0"), "--per-user-limit must be >= 1"),
    ],
)
def test_bad_values_are_one_line_errors(stack: StackHandle, name: str, extra: tuple[str, ...], message: str) -> None:
    code, out = create(stack, name, *extra)
    assert code == 1
    assert message in out
    assert len(out.splitlines()) == 1
    assert oncall(stack, "sale", "show", name).returncode == 1  # nothing was written


def test_existing_and_unknown_skus_are_refused(stack: StackHandle, name: str) -> None:
    assert create(stack, name, "--stock", "1")[0] == 0
    assert create(stack, name, "--stock", "1") == (
        1,
        f"Error: sale '{name}' already exists (use add-stock to sell more)",
    )
    assert create(stack, "bad{sku}", "--stock", "1")[0] == 1
    for args in (("show", "nope-" + name), ("add-stock", "nope-" + name, "1"), ("close", "nope-" + name)):
        done = oncall(stack, "sale", *args)
        assert (done.returncode, done.stderr.strip()) == (1, f"Error: unknown SKU 'nope-{name}'")
    assert "units to add must be >= 1" in oncall(stack, "sale", "add-stock", name, "0").stderr
    assert oncall(stack, "sale", "close", name).returncode == 0
    assert "is already closed" in oncall(stack, "sale", "close", name).stderr
    assert "is closed" in oncall(stack, "sale", "add-stock", name, "1").stderr


async def test_redis_down_half_way_is_repaired_by_the_reconciler(stack: StackHandle, name: str) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    code, out = create(stack, name, "--stock", "7", env={"REDIS_URL": dead})
    assert code == 1
    assert f"run `flashgate reconcile --sku {name} --apply`" in out
    assert json.loads(oncall(stack, "sale", "show", name, "--json").stdout)["redis_has_sale"] is False

    assert oncall(stack, "reconcile", "--sku", name).returncode == 1
    assert oncall(stack, "reconcile", "--sku", name, "--apply").returncode == 0
    r = redis_client(stack)
    try:
        assert await r.get(names.stock_key(name)) == "7"
    finally:
        await r.aclose()


def bare_env() -> dict[str, str]:
    """The environment without any of the stack's URLs (PATH and the like only)."""
    return {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "KAFKA_BOOTSTRAP")}


@pytest.mark.parametrize("command", ["", "create", "list", "show", "add-stock", "close"])
def test_help_works_without_any_url(command: str) -> None:
    done = subprocess.run(
        [FLASHGATE, "sale", *command.split(), "--help"], capture_output=True, text=True, env=bare_env(), check=False
    )
    assert (done.returncode, done.stderr) == (0, ""), done.stderr
    assert "[env var: DATABASE_URL]" in done.stdout
    assert "[env var: REDIS_URL]" in done.stdout


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        ("flashgate sa", {"sale"}),
        ("flashgate sale cr", {"create"}),
        ("flashgate sale create --st", {"--stock", "--starts-at"}),
    ],
)
def test_shell_completion_offers_commands_and_options(words: str, expected: set[str]) -> None:
    """What docs/operations.md's `eval "$(_FLASHGATE_COMPLETE=bash_source flashgate)"` line asks for on each Tab."""
    env = {**bare_env(), "COMP_WORDS": words, "COMP_CWORD": str(len(words.split()) - 1),
           "_FLASHGATE_COMPLETE": "bash_complete"}  # fmt: skip
    done = subprocess.run([FLASHGATE], capture_output=True, text=True, env=env, check=False)
    assert done.returncode == 0, done.stderr
    offered = {line.split(",", 1)[1] for line in done.stdout.splitlines()}
    assert offered == expected


def test_a_sku_orders_could_not_use_is_refused(stack: StackHandle) -> None:
    """One SKU rule (flashgate.events.Sku): `a:b` used to be created, then every order for it got 400."""
    code, out = create(stack, "a:b", "--stock", "5")
    assert (code, out.strip()) == (1, "Error: bad SKU 'a:b': 1–64 characters of A–Z, a–z, 0–9, '.', '_' and '-'")


def test_version() -> None:
    done = subprocess.run([FLASHGATE, "--version"], capture_output=True, text=True, check=False)
    assert (done.returncode, done.stdout.strip()) == (0, f"flashgate {version('flashgate')}")


def test_urls_are_taken_before_or_after_the_command_and_a_missing_one_is_one_line(stack: StackHandle) -> None:
    urls = ["--database-url", stack.database_url, "--redis-url", stack.redis_url]
    for args in (["sale", *urls, "list"], ["sale", "list", *urls]):
        done = subprocess.run([FLASHGATE, *args], capture_output=True, text=True, env=bare_env(), check=False)
        assert (done.returncode, done.stderr) == (0, ""), (args, done.stderr)
        assert done.stdout.startswith("SKU")
    # A URL typed before the command wins over the environment's, which the command also sees.
    dead = f"redis://127.0.0.1:{free_port()}/0"
    typed = subprocess.run(
        [FLASHGATE, "sale", "--redis-url", stack.redis_url, "list"],
        capture_output=True, text=True, env={**bare_env(), "DATABASE_URL": stack.database_url, "REDIS_URL": dead},
        check=False,
    )  # fmt: skip
    assert typed.returncode == 0, typed.stderr
    missing = subprocess.run([FLASHGATE, "sale", "list"], capture_output=True, text=True, env=bare_env(), check=False)
    assert missing.returncode == 1
    assert missing.stderr.strip().splitlines() == [
        'Error: DATABASE_URL is not set (--database-url or env DATABASE_URL; hint: eval "$(flashgate stack env)")'
    ]
