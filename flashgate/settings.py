"""Settings from the environment, read one way by every process: names, deprecated aliases, types, errors.

Each process has one frozen dataclass of settings (gate and relay: `GateSettings`, worker:
`WorkerSettings`, monitor: `MonitorSettings`, reconciler: `ReconcileSettings`), built once by
`load()` in its CLI or app factory, never at import. A field's variable follows one rule:

- a setting of the whole pipeline has one name, read by every process with that field (SHARED):
  REDIS_URL, DATABASE_URL, KAFKA_BOOTSTRAP, FLASHGATE_TOPIC, FLASHGATE_GROUP, FLASHGATE_IDEM_TTL_S,
  FLASHGATE_OTLP_ENDPOINT;
- any other is FLASHGATE_<SCOPE>_<FIELD>: FLASHGATE_GATE_LINGER_MS, FLASHGATE_WORKER_BATCH_MAX_ROWS,
  FLASHGATE_MONITOR_PORT, FLASHGATE_RECONCILE_BACKLOG_TIMEOUT_S (a class may name a few itself, `ENV`);
- Kafka TLS/SASL is FLASHGATE_KAFKA_* for every process (flashgate/kafka_client.py).

A value is typed by its field's annotation (msgspec, strings coerced; `Annotated` bounds), an
empty variable counts as unset, and a missing required one is named. The same check runs on
direct construction (`check()` in each class's `__post_init__`), so no path skips validation.
A name from before this scheme is a deprecated alias: it still works and warns once per process
(`DeprecatedSetting`); set together with its new name to another value, it is a ConfigError.
docs/configuration.md lists every variable.
"""

from __future__ import annotations

import dataclasses
import os
import re
import typing
import warnings
from collections.abc import Mapping
from functools import cache
from typing import Any, ClassVar, Protocol, TypeVar

import msgspec

# Settings every process that has the field reads under one name (the pipeline's, not a process's).
SHARED: Mapping[str, str] = {
    "redis_url": "REDIS_URL",
    "database_url": "DATABASE_URL",
    "kafka_bootstrap": "KAFKA_BOOTSTRAP",
    "topic": "FLASHGATE_TOPIC",
    "group": "FLASHGATE_GROUP",
    "idem_ttl_s": "FLASHGATE_IDEM_TTL_S",
    "otlp_endpoint": "FLASHGATE_OTLP_ENDPOINT",
}
HINT = 'hint: eval "$(flashgate stack env)"'


class ConfigError(ValueError):
    """A setting that cannot work; the message names the variable. Every process exits with it, in one line."""


class DeprecatedSetting(FutureWarning):
    """A variable was read under its old name; the message gives the new one."""


class Settings(Protocol):
    """What `load()` reads: a dataclass with a scope, and optionally names and aliases of its own."""

    SCOPE: ClassVar[str]  # GATE, WORKER, MONITOR, RECONCILE
    __dataclass_fields__: ClassVar[dict[str, Any]]


S = TypeVar("S", bound=Settings)


def variable(cls: type[Settings], field: str) -> str:
    """The variable of `field` in `cls`: the class's own name for it, the shared one, or FLASHGATE_<SCOPE>_<FIELD>."""
    own: Mapping[str, str] = getattr(cls, "ENV", {})
    return own.get(field) or SHARED.get(field) or f"FLASHGATE_{cls.SCOPE}_{field.upper()}"


def aliases(cls: type[Settings], field: str) -> tuple[str, ...]:
    """The deprecated names of `field`'s variable, oldest scheme first."""
    old: Mapping[str, tuple[str, ...]] = getattr(cls, "ALIASES", {})
    return old.get(field, ())


def from_env(cls: type[Settings]) -> tuple[str, ...]:
    """The fields of `cls` that `load()` reads from a variable (the rest the caller passes in)."""
    skip: tuple[str, ...] = getattr(cls, "NOT_FROM_ENV", ())
    return tuple(f.name for f in dataclasses.fields(cls) if f.name not in skip)


def variables(cls: type[Settings]) -> dict[str, tuple[str, ...]]:
    """Every variable `load(cls)` reads → its deprecated aliases (for docs and tests)."""
    return {variable(cls, f): aliases(cls, f) for f in from_env(cls)}


def option_help(cls: type[Settings], field: str, text: str) -> str:
    """A CLI option's help that names the option's variable, as click's `show_envvar` would."""
    return f"{text} [env var: {variable(cls, field)}]"


def lookup(env: Mapping[str, str], name: str, old: tuple[str, ...] = ()) -> str | None:
    """The value of `name`, else of one of its deprecated `old` names (warned once); None when unset or empty.

    ConfigError when an old name is set to a value other than the new name's (values are never shown:
    some are secrets).
    """
    value = env.get(name) or None
    for alias in old:
        given = env.get(alias) or None
        if given is None:
            continue
        if value is not None and given != value:
            raise ConfigError(
                f"{alias} (deprecated, now {name}) and {name} are set to different values; set {name} only"
            )
        value = given
        warnings.warn(f"{alias} is deprecated: use {name}", DeprecatedSetting, stacklevel=3)
    return value


def field_value(env: Mapping[str, str], cls: type[Settings], field: str) -> str | None:
    """The raw string of one field's variable (or its alias), None when unset: for fields a class reads itself."""
    return lookup(env, variable(cls, field), aliases(cls, field))


def load(
    cls: type[S],
    env: Mapping[str, str] | None = None,
    *,
    given: Mapping[str, object] | None = None,
    overrides: Mapping[str, object] | None = None,
) -> S:
    """Build `cls` from `env` (default os.environ): each field from its variable, typed by its annotation.

    `given` are values the caller worked out itself (Kafka security, a parsed flag); `overrides`
    (CLI options; None = not given) win over the environment. ConfigError names the variable of
    any value that cannot be typed, of any required one that is missing, and of any check that fails.
    """
    e = os.environ if env is None else env
    values: dict[str, object] = dict(given or {})
    for field in from_env(cls):
        if field in values:
            continue
        raw = field_value(e, cls, field)
        if raw is not None:
            values[field] = convert(cls, field, raw, strict=False)
    values.update({k: convert(cls, k, v) for k, v in (overrides or {}).items() if v is not None})
    required = [f.name for f in dataclasses.fields(cls) if _required(f) and f.name not in values]
    if required:
        names = [variable(cls, f) for f in required]
        raise ConfigError(f"{', '.join(names)} {'is' if len(names) == 1 else 'are'} not set ({HINT})")
    return cls(**values)


def convert(cls: type[Settings], field: str, value: object, *, strict: bool = True) -> object:
    """`value` as the type of `cls.field` (strings coerced unless `strict`); ConfigError naming the variable."""
    try:
        return msgspec.convert(value, _hints(cls)[field], strict=strict)
    except msgspec.ValidationError as err:
        shown = value if isinstance(value, int | float) else "(not shown)" if _secret(field) else repr(value)
        raise ConfigError(f"{variable(cls, field)}={shown}: {_lower(str(err))}") from err


def check(settings: Settings) -> None:
    """Check every env-read field of `settings` against its annotation (type, bounds); call it in `__post_init__`."""
    cls = type(settings)
    for field in from_env(cls):
        convert(cls, field, getattr(settings, field))


@cache
def _hints(cls: type[Settings]) -> dict[str, Any]:
    return typing.get_type_hints(cls, include_extras=True)


def _required(f: dataclasses.Field[Any]) -> bool:
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING


def _secret(field: str) -> bool:
    return any(word in field for word in ("secret", "password", "key"))


def _lower(message: str) -> str:
    """msgspec's "Expected `int`, got `str`" as "expected `int`" (the value is shown already)."""
    message = re.sub(r", got `[^`]*`$", "", message)
    return message[:1].lower() + message[1:]
