"""Stack settings precedence and validation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ops.stack.errors import StackConfigError
from ops.stack.settings import DEFAULT_PORTS, resolve


def test_defaults(tmp_path: Path) -> None:
    s = resolve(str(tmp_path), {}, env={})
    assert s.redis_port == DEFAULT_PORTS["redis_port"]
    assert s.connection_env() == {
        "REDIS_URL": f"redis://127.0.0.1:{s.redis_port}/0",
        "DATABASE_URL": f"postgresql://flashgate@127.0.0.1:{s.postgres_port}/flashgate",
        "KAFKA_BOOTSTRAP": f"127.0.0.1:{s.kafka_port}",
    }


def test_option_beats_env_beats_saved(tmp_path: Path) -> None:
    (tmp_path / "stack.json").write_text(json.dumps({"redis_port": 1111, "postgres_port": 2222}))
    env = {"FLASHGATE_REDIS_PORT": "3333", "FLASHGATE_KAFKA_PORT": "4444"}
    s = resolve(str(tmp_path), {"redis_port": 5555}, env=env)
    assert (s.redis_port, s.postgres_port, s.kafka_port) == (5555, 2222, 4444)


def test_saved_settings_round_trip(tmp_path: Path) -> None:
    first = resolve(str(tmp_path), {}, free_ports=True, env={})
    first.save()
    assert resolve(str(tmp_path), {}, env={}) == first


def test_free_ports_are_distinct(tmp_path: Path) -> None:
    s = resolve(str(tmp_path), {}, free_ports=True, env={})
    ports = {s.redis_port, s.postgres_port, s.kafka_port, s.kafka_controller_port}
    assert len(ports) == 4
    assert not ports & set(DEFAULT_PORTS.values())


def test_state_dir_from_env(tmp_path: Path) -> None:
    assert resolve(None, {}, env={"FLASHGATE_STACK_DIR": str(tmp_path)}).state_dir == tmp_path.resolve()


@pytest.mark.parametrize(
    ("ports", "env", "message"),
    [
        ({"redis_port": 70000}, {}, "--redis-port 70000 is outside"),
        ({}, {"FLASHGATE_POSTGRES_PORT": "abc"}, "FLASHGATE_POSTGRES_PORT='abc' is not a port"),
        ({"redis_port": 7000, "kafka_port": 7000}, {}, "same port"),
    ],
)
def test_bad_ports(tmp_path: Path, ports: dict[str, int | None], env: dict[str, str], message: str) -> None:
    with pytest.raises(StackConfigError, match=message):
        resolve(str(tmp_path), ports, env=env)


def test_corrupt_stack_file(tmp_path: Path) -> None:
    (tmp_path / "stack.json").write_text("{nope")
    with pytest.raises(StackConfigError, match="unreadable"):
        resolve(str(tmp_path), {}, env={})
