"""deploy/ (kustomize) and docker-compose.yml against the code: render, schemas, and what schemas cannot see.

Both kustomizations render; every object of a built-in kind passes Kubernetes' own schema,
strictly (kubernetes-validate ships them: offline); every other kind is one of the operators'
we mean. Then what no schema knows: each role's environment builds that role's settings (every
variable the code needs is set) and names only variables the code reads; ports and probe paths
are the code's; the KEDA trigger names the writers' group and topic, capped at the partitions;
the PrometheusRule is ops/prometheus/alerts.yml. The renderer is a `kustomize` binary when there
is one (.tools/bin or PATH; `go install sigs.k8s.io/kustomize/kustomize/v5` makes it), else
kubectl's built-in kustomize (kubectl comes with the project's machines).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from flashgate.kafka_client import ENV_PREFIX, ENV_PROPERTIES, PROPERTIES_FILE_ENV
from flashgate.names import ORDERS_TOPIC, WRITERS_GROUP
from flashgate.settings import variables
from gate.app import live, ready
from gate.settings import AuthSettings, GateSettings
from ops.monitor.settings import MonitorSettings
from reconcile.settings import ReconcileSettings
from worker.settings import WorkerSettings

ROOT = Path(__file__).resolve().parents[2]
KUSTOMIZATIONS = ("deploy/base", "deploy/overlays/production")
K8S_VERSION = "1.32.0"
# Kinds no Kubernetes schema covers: the operators' (KEDA, Prometheus Operator, Strimzi, CloudNativePG).
OPERATOR_KINDS = {
    ("keda.sh/v1alpha1", "ScaledObject"),
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("monitoring.coreos.com/v1", "PodMonitor"),
    ("monitoring.coreos.com/v1", "PrometheusRule"),
    ("kafka.strimzi.io/v1beta2", "Kafka"),
    ("kafka.strimzi.io/v1beta2", "KafkaNodePool"),
    ("kafka.strimzi.io/v1beta2", "KafkaTopic"),
    ("kafka.strimzi.io/v1beta2", "KafkaUser"),
    ("keda.sh/v1alpha1", "TriggerAuthentication"),
    ("postgresql.cnpg.io/v1", "Cluster"),
    ("postgresql.cnpg.io/v1", "Pooler"),
}
FLASHGATE_IMAGE = re.compile(r"(^|/)flashgate([:@]|$)")


def kustomize() -> list[str]:
    local = ROOT / ".tools" / "bin" / "kustomize"
    if local.exists():
        return [str(local), "build"]
    if found := shutil.which("kustomize"):
        return [found, "build"]
    if found := shutil.which("kubectl"):
        return [found, "kustomize"]
    pytest.fail("neither kustomize nor kubectl: GOBIN=$PWD/.tools/bin go install sigs.k8s.io/kustomize/kustomize/v5")


@cache
def rendered(path: str) -> tuple[dict[str, Any], ...]:
    done = subprocess.run([*kustomize(), str(ROOT / path)], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return tuple(d for d in yaml.safe_load_all(done.stdout) if d)


def one(objects: tuple[dict[str, Any], ...], kind: str, name: str) -> dict[str, Any]:
    (found,) = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    return found


def flashgate_pods(objects: tuple[dict[str, Any], ...]) -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(role, pod spec, container) for every container running the flashgate image; role = its subcommand."""
    for o in objects:
        spec = o.get("spec", {}).get("template", {}).get("spec", {})
        for c in spec.get("containers", []):
            if FLASHGATE_IMAGE.search(c["image"]):
                yield c["args"][0], spec, c


def flashgate_containers(objects: tuple[dict[str, Any], ...]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(role, container) for every container running the flashgate image."""
    for role, _, c in flashgate_pods(objects):
        yield role, c


def secret_value(objects: tuple[dict[str, Any], ...], name: str, key: str) -> str:
    """A Secret's value: from a rendered Secret, or a placeholder for the `password` of the Secret
    Strimzi makes for a KafkaUser of that name (which only a cluster can render)."""
    rendered_secrets = [o for o in objects if o["kind"] == "Secret" and o["metadata"]["name"] == name]
    if rendered_secrets:
        value: str = rendered_secrets[0]["stringData"][key]
        return value
    assert key == "password", (name, key)
    one(objects, "KafkaUser", name)
    return "made-by-strimzi"


def container_env(objects: tuple[dict[str, Any], ...], c: dict[str, Any]) -> dict[str, str]:
    """The container's environment as the process sees it, Secret and ConfigMap values resolved."""
    env: dict[str, str] = {}
    for source in c.get("envFrom", []):
        env |= one(objects, "ConfigMap", source["configMapRef"]["name"])["data"]
    for var in c.get("env", []):
        if "value" in var:
            env[var["name"]] = var["value"]
        else:
            ref = var["valueFrom"]["secretKeyRef"]
            env[var["name"]] = secret_value(objects, ref["name"], ref["key"])
    return env


@cache
def mounted_file() -> str:
    """A file standing in for one a pod mounts (the Kafka CA): settings check that such files exist."""
    path = Path(tempfile.mkdtemp(prefix="flashgate-deploy-test-")) / "mounted.pem"
    path.write_text("")
    return str(path)


def settings_from(role: str, env: dict[str, str]) -> object:
    """Build the role's settings as the process would (raises when a needed variable is missing);
    a file the pod mounts (FLASHGATE_KAFKA_*_LOCATION) stands in as an empty local file."""
    env = {k: mounted_file() if k.startswith(ENV_PREFIX) and k.endswith("_LOCATION") else v for k, v in env.items()}
    if role == "gate":
        return GateSettings.from_env(env)
    if role == "relay":
        return GateSettings.from_env({**env, "FLASHGATE_GATE_AUTH": "off"})
    if role == "worker":
        return WorkerSettings.from_env(env=env)
    if role == "monitor":
        return MonitorSettings.from_env(env=env)
    assert role == "migrate", role
    assert env["DATABASE_URL"].startswith("postgresql://")
    return env["DATABASE_URL"]


@cache
def variables_the_code_reads() -> frozenset[str]:
    """Every variable name the code reads: literals in its sources plus each settings class's prefix + field."""
    literal = re.compile(r"""["'`]((?:FLASHGATE|PROMETHEUS)_[A-Z0-9_]+|REDIS_URL|DATABASE_URL|KAFKA_BOOTSTRAP)["'`]""")
    names = {m for d in ("gate", "worker", "reconcile", "ops", "flashgate") for p in (ROOT / d).rglob("*.py")
             for m in literal.findall(p.read_text())}  # fmt: skip
    for cls in (GateSettings, AuthSettings, WorkerSettings, MonitorSettings, ReconcileSettings):
        names |= set(variables(cls))
    names |= {ENV_PREFIX + suffix for suffix in ENV_PROPERTIES} | {PROPERTIES_FILE_ENV}
    return frozenset(names)


@pytest.mark.parametrize("path", KUSTOMIZATIONS)
def test_renders_and_every_object_passes_its_schema(path: str) -> None:
    objects = rendered(path)
    assert {r for r, _ in flashgate_containers(objects)} == {"gate", "worker", "relay", "monitor", "migrate"}
    for o in objects:
        key = (o["apiVersion"], o["kind"])
        if key in OPERATOR_KINDS:
            continue
        try:
            kubernetes_validate.validate(o, K8S_VERSION, strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            pytest.fail(f"{key}: neither a Kubernetes kind nor one of the operators' kinds we use")
        except kubernetes_validate.ValidationError as e:
            pytest.fail(f"{o['kind']}/{o['metadata']['name']}: {e.message}")


@pytest.mark.parametrize("path", KUSTOMIZATIONS)
def test_each_role_gets_the_settings_it_needs_and_only_variables_the_code_reads(path: str) -> None:
    objects = rendered(path)
    for role, c in flashgate_containers(objects):
        env = container_env(objects, c)
        settings_from(role, env)
        assert set(env) <= variables_the_code_reads(), f"{role}: {set(env) - variables_the_code_reads()}"
    gate = dict(flashgate_containers(objects))["gate"]
    assert container_env(objects, gate).get("FLASHGATE_GATE_AUTH", "jwt") != "off"  # buyers are verified tokens


@pytest.mark.parametrize("path", KUSTOMIZATIONS)
def test_ports_and_probe_paths_are_the_code_s(path: str) -> None:
    objects = rendered(path)
    roles = dict(flashgate_containers(objects))
    ports = {role: {p["name"]: p["containerPort"] for p in c.get("ports", [])} for role, c in roles.items()}
    env = {role: container_env(objects, c) for role, c in roles.items()}
    assert ports["gate"]["http"] == int(env["gate"].get("FLASHGATE_GATE_PORT", "8000"))
    assert ports["worker"]["metrics"] == int(env["worker"]["FLASHGATE_WORKER_METRICS_PORT"])
    assert ports["monitor"]["metrics"] == int(env["monitor"]["FLASHGATE_MONITOR_PORT"])
    gate = roles["gate"]
    assert gate["livenessProbe"]["httpGet"]["path"] in live.paths
    assert gate["readinessProbe"]["httpGet"]["path"] in ready.paths
    for role, c in roles.items():
        for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
            if probe in c:
                assert c[probe]["httpGet"]["port"] in ports[role], (role, probe)
    for svc in (o for o in objects if o["kind"] == "Service"):
        (role,) = [r for r in roles if svc["spec"]["selector"]["app.kubernetes.io/name"] == f"flashgate-{r}"]
        assert {p["targetPort"] for p in svc["spec"]["ports"]} <= set(ports[role])


@pytest.mark.parametrize("path", KUSTOMIZATIONS)
def test_gate_grace_period_outlasts_its_drain(path: str) -> None:
    objects = rendered(path)
    pod = one(objects, "Deployment", "flashgate-gate")["spec"]["template"]["spec"]
    gate = pod["containers"][0]
    drain_s = int(gate["args"][gate["args"].index("--graceful-timeout") + 1])
    pause_s = int(gate["lifecycle"]["preStop"]["exec"]["command"][-1])
    assert pod["terminationGracePeriodSeconds"] > pause_s + drain_s


@pytest.mark.parametrize("path", KUSTOMIZATIONS)
def test_keda_scales_workers_on_the_writers_lag(path: str) -> None:
    objects = rendered(path)
    scaled = one(objects, "ScaledObject", "flashgate-worker")
    (trigger,) = scaled["spec"]["triggers"]
    worker_env = container_env(objects, dict(flashgate_containers(objects))["worker"])
    settings = settings_from("worker", worker_env)
    assert isinstance(settings, WorkerSettings)
    assert trigger["type"] == "kafka"
    assert (trigger["metadata"]["consumerGroup"], trigger["metadata"]["topic"]) == (settings.group, settings.topic)
    assert (settings.group, settings.topic) == (WRITERS_GROUP, ORDERS_TOPIC)
    assert trigger["metadata"]["bootstrapServers"] == settings.kafka_bootstrap
    assert scaled["spec"]["scaleTargetRef"]["name"] == "flashgate-worker"
    topics = [o for o in objects if o["kind"] == "KafkaTopic" and o["metadata"]["name"] == settings.topic]
    if topics:  # the overlay brings Kafka: never more workers than partitions
        assert scaled["spec"]["maxReplicaCount"] == topics[0]["spec"]["partitions"]


def test_production_kafka_clients_authenticate_as_the_kafka_user_over_tls() -> None:
    """Every role that talks to Kafka, and KEDA, use the listener's TLS and SCRAM mechanism as the
    KafkaUser, with the CA file mounted where the settings say; migrate gets no Kafka credentials."""
    objects = rendered("deploy/overlays/production")
    kafka = one(objects, "Kafka", "flashgate")
    (listener,) = kafka["spec"]["kafka"]["listeners"]
    user = one(objects, "KafkaUser", "flashgate")
    assert listener["tls"]
    assert listener["authentication"]["type"] == user["spec"]["authentication"]["type"]
    # Strimzi's name of the mechanism → librdkafka's, KEDA's
    mechanism, keda_sasl = {"scram-sha-512": ("SCRAM-SHA-512", "scram_sha512")}[listener["authentication"]["type"]]
    for role, pod, c in flashgate_pods(objects):
        env = container_env(objects, c)
        if role == "migrate":
            assert "FLASHGATE_KAFKA_SASL_PASSWORD" not in env
            continue
        settings = settings_from(role, env)
        security = dict(settings.kafka_security.properties)  # type: ignore[attr-defined]
        assert (security["security.protocol"], security["sasl.mechanism"]) == ("SASL_SSL", mechanism), role
        assert security["sasl.username"] == user["metadata"]["name"], role
        assert env["KAFKA_BOOTSTRAP"].endswith(f":{listener['port']}"), role
        ca = Path(env["FLASHGATE_KAFKA_SSL_CA_LOCATION"])
        (mount,) = [m for m in c["volumeMounts"] if Path(m["mountPath"]) == ca.parent]
        (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
        assert volume["secret"]["secretName"] == f"{kafka['metadata']['name']}-cluster-ca-cert", role
        assert {"key": "ca.crt", "path": ca.name} in volume["secret"]["items"], role
    (trigger,) = one(objects, "ScaledObject", "flashgate-worker")["spec"]["triggers"]
    assert (trigger["metadata"]["sasl"], trigger["metadata"]["tls"]) == (keda_sasl, "enable")
    auth = one(objects, "TriggerAuthentication", trigger["authenticationRef"]["name"])
    refs = {r["parameter"]: (r["name"], r["key"]) for r in auth["spec"]["secretTargetRef"]}
    assert secret_value(objects, *refs["username"]) == user["metadata"]["name"]
    assert refs["password"] == (user["metadata"]["name"], "password")
    assert refs["ca"] == (f"{kafka['metadata']['name']}-cluster-ca-cert", "ca.crt")


def test_prometheusrule_is_the_alert_rules_file() -> None:
    alerts = yaml.safe_load((ROOT / "ops" / "prometheus" / "alerts.yml").read_text())
    rule = one(rendered("deploy/base"), "PrometheusRule", "flashgate")
    assert rule["spec"]["groups"] == alerts["groups"], "run scripts/render-prometheusrule"


def test_production_pins_the_image_by_digest() -> None:
    for _, c in flashgate_containers(rendered("deploy/overlays/production")):
        assert re.search(r"@sha256:[0-9a-f]{64}$", c["image"]), c["image"]


def compose() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return doc


def test_compose_runs_every_flashgate_role_with_its_settings_and_a_health_check() -> None:
    services = compose()["services"]
    ours = {name: s for name, s in services.items() if "flashgate" in s["image"]}
    assert {s["command"][0] for s in ours.values()} == {"migrate", "gate", "worker", "monitor"}
    for name, s in ours.items():
        env = {k: str(v) for k, v in s["environment"].items()}
        assert set(env) <= variables_the_code_reads(), name
        settings_from(s["command"][0], env)
        for dep, condition in s["depends_on"].items():
            assert dep in services, (name, dep)
            want = "service_completed_successfully" if dep in ("migrate", "kafka-topics") else "service_healthy"
            assert condition == {"condition": want}, (name, dep)
        if s["command"][0] != "migrate":
            probe = s["healthcheck"]["test"][-1]
            (port_var,) = re.findall(r"os\.environ\['(\w+)'\]", probe)
            assert port_var in env, name  # the check follows the port the service listens on
            assert any(p.endswith(f":{env[port_var]}") for p in s["ports"]), name
    assert ours["gate"]["healthcheck"]["test"][-1].count("/health/ready") == 1
    assert ours["migrate"]["restart"] == "no"
