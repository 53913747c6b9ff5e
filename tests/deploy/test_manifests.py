"""deploy/: every kustomization renders, every object is valid for Kubernetes (strict) or KServe's CRD,
and the manifests agree with the server: settings, probe paths, ports, grace period, security."""

import gzip
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from service.config import Settings
from service.rest.app import routes

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
KUSTOMIZATIONS = ("base", "overlays/models-from-volume", "kserve")
KUBECTL = shutil.which("kubectl")


def _render(path: str) -> list[dict[str, Any]]:
    if KUBECTL is None:
        pytest.skip("kubectl is not installed (scripts/system-deps.sh installs Debian's as root)")
    rendered = subprocess.run([KUBECTL, "kustomize", str(DEPLOY / path)], capture_output=True, text=True, check=False)
    assert rendered.returncode == 0, rendered.stderr
    return [doc for doc in yaml.safe_load_all(rendered.stdout) if doc]


@pytest.fixture(scope="module")
def objects() -> dict[str, list[dict[str, Any]]]:
    return {path: _render(path) for path in KUSTOMIZATIONS}


def _strict(schema: Any) -> Any:
    """A CRD schema as the API server applies it with strict field validation: unknown fields are errors."""
    if isinstance(schema, dict):
        schema = {key: _strict(value) for key, value in schema.items()}
        open_ended = "additionalProperties" in schema or schema.get("x-kubernetes-preserve-unknown-fields")
        if "properties" in schema and not open_ended:
            schema["additionalProperties"] = False
    elif isinstance(schema, list):
        schema = [_strict(value) for value in schema]
    return schema


KUBERNETES_KINDS = {
    "base": ["ConfigMap", "Deployment", "HorizontalPodAutoscaler", "PodDisruptionBudget", "Service", "Service"],
    "overlays/models-from-volume": [
        "ConfigMap",
        "Deployment",
        "HorizontalPodAutoscaler",
        "Job",
        "PersistentVolumeClaim",
        "PodDisruptionBudget",
        "Service",
        "Service",
    ],
    "kserve": [],
}


def test_every_kubernetes_object_is_valid_strictly(objects: dict[str, list[dict[str, Any]]]) -> None:
    import kubernetes_validate
    from kubernetes_validate.utils import latest_version

    for path, docs in objects.items():
        kinds = []
        for doc in docs:
            if doc["apiVersion"].startswith("serving.kserve.io/"):
                continue
            kubernetes_validate.validate(doc, latest_version(), strict=True)
            kinds.append(doc["kind"])
        assert sorted(kinds) == KUBERNETES_KINDS[path]


@pytest.mark.parametrize(
    ("where", "typo"),
    [
        (("spec", "template", "spec"), "terminationGracePeriod"),
        (("spec", "template", "spec", "containers", 0), "prots"),
    ],
)
def test_strict_validation_refuses_a_misspelt_field(
    objects: dict[str, list[dict[str, Any]]], where: tuple[str | int, ...], typo: str
) -> None:
    import kubernetes_validate
    from kubernetes_validate.utils import latest_version

    deployment = json.loads(json.dumps(next(doc for doc in objects["base"] if doc["kind"] == "Deployment")))
    place = deployment
    for key in where:
        place = place[key]
    place[typo] = 30
    with pytest.raises(kubernetes_validate.ValidationError, match=typo):
        kubernetes_validate.validate(deployment, latest_version(), strict=True)


def test_every_inference_service_is_valid_against_kserves_crd(objects: dict[str, list[dict[str, Any]]]) -> None:
    import jsonschema

    with gzip.open(DEPLOY / "schemas" / "inferenceservice-v1beta1.schema.json.gz") as f:
        schema = _strict(json.load(f))
    services = [doc for doc in objects["kserve"] if doc["kind"] == "InferenceService"]
    assert len(services) == 2
    for service in services:
        jsonschema.validate(service, schema)
    broken = json.loads(json.dumps(services[0]))
    broken["spec"]["predictor"]["containers"][0]["prots"] = []  # a typo the API server would refuse
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema)


def _containers(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The serving containers: of Deployments and InferenceServices."""
    found = []
    for doc in docs:
        if doc["kind"] not in ("Deployment", "InferenceService"):
            continue
        spec = doc["spec"]
        pod = spec.get("template", {}).get("spec") or spec.get("predictor")
        if pod:
            found += pod.get("containers", [])
    return found


def _env(docs: list[dict[str, Any]]) -> dict[str, str]:
    """Every MNIST_* setting the manifests give, from ConfigMaps and container env."""
    env = {k: v for doc in docs if doc["kind"] == "ConfigMap" for k, v in doc["data"].items()}
    for container in _containers(docs):
        env |= {e["name"]: e["value"] for e in container.get("env", []) if e["name"].startswith("MNIST_")}
    return env


def test_every_setting_in_the_manifests_is_a_real_one_with_a_valid_value(
    objects: dict[str, list[dict[str, Any]]],
) -> None:
    for docs in objects.values():
        env = _env(docs)
        assert env
        unknown = [k for k in env if k.removeprefix("MNIST_").lower() not in Settings.model_fields]
        assert unknown == []
        Settings(**{k.removeprefix("MNIST_").lower(): v for k, v in env.items()})  # values parse and validate


def test_probes_and_ports_match_the_server(objects: dict[str, list[dict[str, Any]]]) -> None:
    settings = Settings()
    paths = {route.path for route in routes(settings, None, None, None)}  # type: ignore[arg-type]  # paths only
    for docs in objects.values():
        env = _env(docs)
        for container in _containers(docs):
            ports = {p.get("name", "http"): p["containerPort"] for p in container["ports"]}
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                if probe in container:
                    get = container[probe]["httpGet"]
                    assert get["path"] in paths, get
                    assert ports.get(get["port"], get["port"]) == int(env.get("MNIST_PORT", settings.port))
            if "grpc" in ports or "h2c" in ports:
                assert ports.get("grpc", ports.get("h2c")) == int(env.get("MNIST_GRPC_PORT", settings.grpc_port))
            else:
                assert set(ports.values()) == {int(env.get("MNIST_PORT", settings.port))}


def test_the_deployment_drains_before_it_is_killed_and_runs_locked_down(
    objects: dict[str, list[dict[str, Any]]],
) -> None:
    for path in ("base", "overlays/models-from-volume"):
        docs = objects[path]
        deployment = next(doc for doc in docs if doc["kind"] == "Deployment")
        pod = deployment["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        shutdown = float(_env(docs)["MNIST_GRACEFUL_SHUTDOWN_S"])
        pause = container["lifecycle"]["preStop"]["sleep"]["seconds"]
        assert pod["terminationGracePeriodSeconds"] > shutdown + pause
        assert pod["automountServiceAccountToken"] is False and pod["securityContext"]["runAsNonRoot"] is True
        security = container["securityContext"]
        assert security["readOnlyRootFilesystem"] is True and security["capabilities"]["drop"] == ["ALL"]
        assert security["allowPrivilegeEscalation"] is False
        kinds = {doc["kind"] for doc in docs}
        assert {"Service", "HorizontalPodAutoscaler", "PodDisruptionBudget", "ConfigMap"} <= kinds


def test_a_headless_service_names_every_ready_replica_for_rollouts(objects: dict[str, list[dict[str, Any]]]) -> None:
    """`mnist-train deploy --resolve` resolves it to one address per ready pod of the Deployment."""
    for path in ("base", "overlays/models-from-volume"):
        services = {doc["metadata"]["name"]: doc for doc in objects[path] if doc["kind"] == "Service"}
        replicas = services["bn-mnist-serving-replicas"]["spec"]
        assert replicas["clusterIP"] == "None" and replicas["publishNotReadyAddresses"] is False
        pods = next(doc for doc in objects[path] if doc["kind"] == "Deployment")["spec"]["template"]["metadata"]
        assert replicas["selector"].items() <= pods["labels"].items()
        assert replicas["selector"] == services["bn-mnist-serving"]["spec"]["selector"]


def test_the_compose_fleet_balances_as_scripts_fleet_does(tmp_path: Path) -> None:
    """deploy/compose: HAProxy accepts its configuration, with the retries and checks of scripts/fleet.py."""
    haproxy = shutil.which("haproxy") or ("/usr/sbin/haproxy" if Path("/usr/sbin/haproxy").exists() else None)
    if haproxy is None:
        pytest.skip("HAProxy is not installed (scripts/system-deps.sh installs Debian's as root)")
    config = DEPLOY / "compose" / "haproxy.cfg"
    checked = subprocess.run([haproxy, "-c", "-f", str(config)], capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    fleet = (ROOT / "scripts" / "fleet.py").read_text()
    policy = ("retry-on conn-failure empty-response junk-response response-timeout 503", "option httpchk GET /readyz")
    for line in policy:
        assert line in config.read_text() and line in fleet
    compose = yaml.safe_load((DEPLOY / "compose" / "compose.yaml").read_text())
    mnist = compose["services"]["mnist"]
    assert mnist["image"] == "bn-mnist-serving" and "bn-mnist-serving ." in (ROOT / "Makefile").read_text()
    assert mnist["environment"]["MNIST_MAX_CONNECTIONS_PER_CLIENT"] == "0"
    assert set(mnist["environment"]) <= {f"MNIST_{name.upper()}" for name in Settings.model_fields}
