"""deploy/k8s holds valid Kubernetes objects that agree with the code; no cluster needed.

Every object is validated strictly (an unknown field fails) against the schema of one pinned
Kubernetes version. Then the manifests are held to what the code says: a StatefulSet for
each flow of `loyalnest.registry` running its registered target, one cluster address per
process, its recovery store on a claimed volume, the API's probes, and only environment names
that `Settings` reads. Each check also runs on a deliberately broken copy of the manifests,
so a check that stopped checking fails as well.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml
from pydantic import AliasChoices

from loyalnest.registry import JOBS, Kind, RegisteredJob, flows, registered
from loyalnest.settings import Settings

K8S = Path(__file__).resolve().parents[2] / "deploy" / "k8s"
KUSTOMIZATION = "kustomization.yaml"
# The newest schema kubernetes-validate 1.37 ships; a newer cluster keeps these fields.
KUBERNETES_VERSION = "1.37.0"
NAMESPACE = "loyalnest"
CLUSTER_DOMAIN = "cluster.local"
IMAGE = "ghcr.io/loyalnest/loyalnest:latest"
CONFIG_MAP = "loyalnest-config"
SECRET = "loyalnest-secrets"
BOOTSTRAP_JOB = "loyalnest-bootstrap"
API = "api"
API_REPLICAS = 2
# The API must bind every interface of its pod: Settings' default, 127.0.0.1, is unreachable.
ALL_INTERFACES = "0.0.0.0"  # noqa: S104
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "Job")
# Variables the containers get that are not LoyalNest settings, and who reads each.
OTHER_VARIABLES = {
    "ADDRESSES": "the flows' -a argument (Kubernetes expands $(ADDRESSES))",
    "BYTEWAX_DATAFLOW_API_ENABLED": "Bytewax",
    "BYTEWAX_DATAFLOW_API_PORT": "Bytewax",
    "BYTEWAX_DATAFLOW_API_CACHE_PATH": "Bytewax",
    "LD_PRELOAD": "the dynamic loader (jemalloc, as FLOW_ALLOCATOR)",
}
# Set in every container by the container runtime.
RUNTIME_VARIABLES = frozenset({"HOSTNAME"})
KUBERNETES_REFERENCE = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")
SHELL_REFERENCE = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)")
SHELL_ASSIGNMENT = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)=", re.MULTILINE)

Manifest = dict[str, Any]
Check = Callable[[list[Manifest]], None]
FlowCheck = Callable[[list[Manifest], RegisteredJob], None]


def manifest_files() -> list[Path]:
    return sorted(path for path in K8S.glob("*.yaml") if path.name != KUSTOMIZATION)


def load_objects() -> list[Manifest]:
    return [
        document
        for path in manifest_files()
        for document in yaml.safe_load_all(path.read_text())
        if document is not None  # a file may start with comments only
    ]


OBJECTS = load_objects()


def object_id(obj: Manifest) -> str:
    return f"{obj['kind']}/{obj['metadata']['name']}"


# Finding things in the manifests.


def find(objects: list[Manifest], kind: str, name: str) -> Manifest:
    matches = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind} {name!r}, found {len(matches)}"
    return matches[0]


def of_kind(objects: list[Manifest], *kinds: str) -> list[Manifest]:
    return [o for o in objects if o["kind"] in kinds]


def pod_spec(workload: Manifest) -> Manifest:
    spec: Manifest = workload["spec"]["template"]["spec"]
    return spec


def pod_labels(workload: Manifest) -> dict[str, str]:
    labels: dict[str, str] = workload["spec"]["template"]["metadata"]["labels"]
    return labels


def main_container(workload: Manifest) -> Manifest:
    containers: list[Manifest] = pod_spec(workload)["containers"]
    assert len(containers) == 1, f"{object_id(workload)}: expected one container"
    return containers[0]


def all_containers(workload: Manifest) -> list[Manifest]:
    spec = pod_spec(workload)
    return [*spec.get("initContainers", []), *spec["containers"]]


def env_values(container: Manifest) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}


def container_port(container: Manifest, port: int | str) -> int:
    """A probe's or Service's port, given by number or by the container port's name."""
    if isinstance(port, int):
        return port
    numbers = [p["containerPort"] for p in container.get("ports", []) if p.get("name") == port]
    assert numbers, f"container {container['name']} has no port named {port!r}"
    number: int = numbers[0]
    return number


def option(args: list[str], flag: str) -> str:
    assert flag in args, f"no {flag} in {args}"
    return args[args.index(flag) + 1]


def shell_script(container: Manifest) -> str | None:
    command = container.get("command", [])
    return command[2] if command[:2] == ["sh", "-c"] else None


def mount_at(container: Manifest, path: str) -> Manifest:
    """The volume mount `path` lies on (the deepest one, as the kernel resolves it)."""
    mounts = [
        m
        for m in container.get("volumeMounts", [])
        if PurePosixPath(path).is_relative_to(m["mountPath"])
    ]
    assert mounts, f"container {container['name']}: no volume is mounted at {path}"
    deepest: Manifest = max(mounts, key=lambda m: len(PurePosixPath(m["mountPath"]).parts))
    return deepest


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and selector.items() <= labels.items()


def settings_variables() -> frozenset[str]:
    """The environment names Settings reads: a field's alias, else its name upper-cased."""
    names: set[str] = set()
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        if alias is None:
            names.add(name.upper())
        elif isinstance(alias, str):
            names.add(alias)
        elif isinstance(alias, AliasChoices):
            names.update(choice for choice in alias.choices if isinstance(choice, str))
    return frozenset(names)


def config_data(objects: list[Manifest]) -> dict[str, str]:
    data: dict[str, str] = find(objects, "ConfigMap", CONFIG_MAP)["data"]
    return data


def container_variables(objects: list[Manifest], container: Manifest) -> set[str]:
    """Every variable the container's environment defines (env, and envFrom's ConfigMap)."""
    names = {e["name"] for e in container.get("env", [])}
    if any("configMapRef" in source for source in container.get("envFrom", [])):
        names |= config_data(objects).keys()
    return names


def containers_of_workloads(objects: list[Manifest]) -> Iterator[tuple[Manifest, Manifest]]:
    for workload in of_kind(objects, *WORKLOAD_KINDS):
        for container in all_containers(workload):
            yield workload, container


# Checks of one flow: each raises AssertionError naming what is wrong.


def check_flow_runs_its_target(objects: list[Manifest], job: RegisteredJob) -> None:
    container = main_container(find(objects, "StatefulSet", job.name))
    script = shell_script(container)
    assert script is not None, f"{job.name}: the flow must run through its sh -c wrapper"
    # The pod's ordinal is its process id: the wrapper passes it, the rest comes from args.
    assert script == 'exec python -m bytewax.run "$@" -i "${HOSTNAME##*-}"', script
    args = container["args"]
    assert args[0] == job.target, f"{job.name} runs {args[0]}"
    # With a recovery store Bytewax refuses to start without snapshot and backup intervals.
    for flag in ("-r", "-s", "-b", "-a"):
        option(args, flag)


def check_flow_has_headless_service(objects: list[Manifest], job: RegisteredJob) -> None:
    flow = find(objects, "StatefulSet", job.name)
    service = find(objects, "Service", flow["spec"]["serviceName"])
    assert service["spec"].get("clusterIP") == "None", f"{object_id(service)} is not headless"
    # Peers must resolve each other before any of them is ready (none is, until all met).
    assert service["spec"].get("publishNotReadyAddresses") is True, object_id(service)
    assert selects(service["spec"].get("selector", {}), pod_labels(flow)), (
        f"{object_id(service)} does not select the pods of {job.name}"
    )


def check_flow_addresses(objects: list[Manifest], job: RegisteredJob) -> None:
    flow = find(objects, "StatefulSet", job.name)
    container = main_container(flow)
    assert option(container["args"], "-a") == "$(ADDRESSES)"
    addresses = env_values(container)["ADDRESSES"].split(";")
    port = container_port(container, "cluster")
    service = flow["spec"]["serviceName"]
    namespace = flow["metadata"]["namespace"]
    # Process i binds the i-th address, so pod <flow>-i must be named there, for every replica.
    expected = [
        f"{job.name}-{i}.{service}.{namespace}.svc.{CLUSTER_DOMAIN}:{port}"
        for i in range(flow["spec"].get("replicas", 1))
    ]
    assert addresses == expected, f"{job.name}: -a {addresses}, expected {expected}"


def check_flow_recovery_store(objects: list[Manifest], job: RegisteredJob) -> None:
    flow = find(objects, "StatefulSet", job.name)
    store = option(main_container(flow)["args"], "-r")
    claims = {t["metadata"]["name"] for t in flow["spec"].get("volumeClaimTemplates", [])}
    mount = mount_at(main_container(flow), store)
    assert mount["name"] in claims, f"{job.name}: {store} is not on a claimed volume"
    creators = [c for c in pod_spec(flow).get("initContainers", []) if creates_store(c, store)]
    assert len(creators) == 1, f"{job.name}: no init container creates {store}"
    assert mount_at(creators[0], store) == mount, f"{job.name}: the store is created elsewhere"


def creates_store(container: Manifest, store: str) -> bool:
    """Runs `python -m bytewax.recovery` with FLOW_RECOVERY_PARTITIONS for the path `store`."""
    script = shell_script(container) or ""
    names_store = re.search(re.escape(store) + r"(?![\w/])", script) is not None
    runs = "python -m bytewax.recovery" in script and "$FLOW_RECOVERY_PARTITIONS" in script
    return names_store and runs


def check_flow_dataflow_api(objects: list[Manifest], job: RegisteredJob) -> None:
    flow = find(objects, "StatefulSet", job.name)
    container = main_container(flow)
    env = env_values(container)
    assert env.get("BYTEWAX_DATAFLOW_API_ENABLED") == "true", job.name
    port = int(env["BYTEWAX_DATAFLOW_API_PORT"])
    for probe in ("readinessProbe", "livenessProbe"):
        check = container[probe]["httpGet"]
        assert check["path"] == "/metrics", f"{job.name} {probe} asks {check['path']}"
        assert container_port(container, check["port"]) == port, f"{job.name} {probe} port"
    cache = mount_at(container, env["BYTEWAX_DATAFLOW_API_CACHE_PATH"])
    volumes = {v["name"]: v for v in pod_spec(flow)["volumes"]}
    assert "emptyDir" in volumes[cache["name"]], f"{job.name}: dataflow.json needs an emptyDir"
    annotations = flow["spec"]["template"]["metadata"]["annotations"]
    scrape = ("true", str(port), "/metrics")
    assert tuple(annotations[f"prometheus.io/{k}"] for k in ("scrape", "port", "path")) == scrape


FLOW_CHECKS: tuple[FlowCheck, ...] = (
    check_flow_runs_its_target,
    check_flow_has_headless_service,
    check_flow_addresses,
    check_flow_recovery_store,
    check_flow_dataflow_api,
)


# Checks of the whole set of manifests.


def check_workloads_match_registry(objects: list[Manifest]) -> None:
    flow_names = {job.name for job in flows()}
    module_names = {job.name for job in JOBS if job.kind is Kind.MODULE}
    statefulsets = {o["metadata"]["name"] for o in of_kind(objects, "StatefulSet")}
    deployments = {o["metadata"]["name"] for o in of_kind(objects, "Deployment")}
    assert statefulsets == flow_names, f"StatefulSets {statefulsets} != flows {flow_names}"
    assert deployments == module_names | {API}, f"Deployments {deployments}"


def check_partitions_cover_processes(objects: list[Manifest]) -> None:
    partitions = int(config_data(objects)["FLOW_RECOVERY_PARTITIONS"])
    for flow in of_kind(objects, "StatefulSet"):
        processes = flow["spec"].get("replicas", 1)
        assert partitions >= processes, f"{object_id(flow)}: {processes} > {partitions} parts"


def check_module_jobs(objects: list[Manifest]) -> None:
    for job in JOBS:
        if job.kind is not Kind.MODULE:
            continue
        deployment = find(objects, "Deployment", job.name)
        container = main_container(deployment)
        assert deployment["spec"].get("replicas") == 1, f"{job.name} must run once"
        assert container["command"] == ["python", "-m", job.target], container["command"]
        env = env_values(container)
        assert env["API_HOST"] == ALL_INTERFACES, f"{job.name} health binds {env['API_HOST']}"
        check = container["livenessProbe"]["httpGet"]
        assert check["path"] == "/health", f"{job.name} liveness asks {check['path']}"
        health_port = container_port(container, check["port"])
        assert health_port == int(env["ROUND_HEALTH_PORT"]), f"{job.name} probe port"


def check_api(objects: list[Manifest]) -> None:
    deployment = find(objects, "Deployment", API)
    container = main_container(deployment)
    env = env_values(container)
    assert deployment["spec"]["replicas"] == API_REPLICAS
    assert container["command"] == ["python", "-m", "api"], container["command"]
    assert env["API_HOST"] == ALL_INTERFACES, f"the API binds {env['API_HOST']}"
    http = int(env["API_HTTP_PORT"])
    probes = {"readinessProbe": "/ready", "livenessProbe": "/health"}
    for probe, path in probes.items():
        check = container[probe]["httpGet"]
        assert check["path"] == path, f"api {probe} asks {check['path']}, not {path}"
        assert container_port(container, check["port"]) == http, f"api {probe} port"
    check_api_service(objects, deployment, {http, int(env["API_GRPC_PORT"])})


def check_api_service(objects: list[Manifest], deployment: Manifest, ports: set[int]) -> None:
    service = find(objects, "Service", API)
    container = main_container(deployment)
    assert selects(service["spec"]["selector"], pod_labels(deployment)), "api Service selector"
    targets = {container_port(container, p["targetPort"]) for p in service["spec"]["ports"]}
    assert targets == ports, f"api Service reaches {targets}, the API listens on {ports}"


def check_bootstrap_job(objects: list[Manifest]) -> None:
    container = main_container(find(objects, "Job", BOOTSTRAP_JOB))
    assert container["command"] == ["python", "-m", "loyalnest.bootstrap"]


def check_namespaces(objects: list[Manifest]) -> None:
    find(objects, "Namespace", NAMESPACE)
    for obj in objects:
        if obj["kind"] != "Namespace":
            assert obj["metadata"].get("namespace") == NAMESPACE, f"{object_id(obj)} namespace"


def check_selectors(objects: list[Manifest]) -> None:
    workloads = of_kind(objects, "Deployment", "StatefulSet")
    for workload in workloads:
        selector = workload["spec"]["selector"]["matchLabels"]
        assert selects(selector, pod_labels(workload)), f"{object_id(workload)} selector"
    for service in of_kind(objects, "Service"):
        selected = [w for w in workloads if selects(service["spec"]["selector"], pod_labels(w))]
        assert len(selected) == 1, f"{object_id(service)} selects {len(selected)} workloads"


def check_one_image(objects: list[Manifest]) -> None:
    for workload, container in containers_of_workloads(objects):
        assert container["image"] == IMAGE, f"{object_id(workload)} runs {container['image']}"


def check_environment_names(objects: list[Manifest]) -> None:
    settings = settings_variables()
    for key in config_data(objects):
        assert key in settings, f"ConfigMap key {key} is not a setting (loyalnest/settings.py)"
    for workload, container in containers_of_workloads(objects):
        where = f"{object_id(workload)} {container['name']}"
        for entry in container.get("env", []):
            name = entry["name"]
            assert name in settings or name in OTHER_VARIABLES, f"{where}: unknown {name}"
            secret = entry.get("valueFrom", {}).get("secretKeyRef")
            if secret is not None:
                assert (secret["name"], secret["key"]) == (SECRET, name), f"{where}: {name}"
        for source in container.get("envFrom", []):
            assert source == {"configMapRef": {"name": CONFIG_MAP}}, f"{where}: {source}"


def check_variable_references(objects: list[Manifest]) -> None:
    """Every $(VAR) Kubernetes expands, and every $VAR a script reads, is defined."""
    for workload, container in containers_of_workloads(objects):
        where = f"{object_id(workload)} {container['name']}"
        defined = container_variables(objects, container)
        words = [*container.get("command", []), *container.get("args", [])]
        for name in (ref for word in words for ref in KUBERNETES_REFERENCE.findall(word)):
            assert name in defined, f"{where}: $({name}) is not in its environment"
        script = shell_script(container) or ""
        known = defined | RUNTIME_VARIABLES | set(SHELL_ASSIGNMENT.findall(script))
        for name in SHELL_REFERENCE.findall(script):
            assert name in known, f"{where}: its script reads ${name}, which nothing sets"


CHECKS: tuple[Check, ...] = (
    check_workloads_match_registry,
    check_partitions_cover_processes,
    check_module_jobs,
    check_api,
    check_bootstrap_job,
    check_namespaces,
    check_selectors,
    check_one_image,
    check_environment_names,
    check_variable_references,
)


# The manifests as they are.


@pytest.mark.parametrize("obj", OBJECTS, ids=object_id)
def test_object_is_valid_for_the_pinned_kubernetes_version(obj: Manifest) -> None:
    kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


def test_kustomization_lists_every_manifest_once() -> None:
    kustomization = yaml.safe_load((K8S / KUSTOMIZATION).read_text())
    assert sorted(kustomization["resources"]) == [path.name for path in manifest_files()]


@pytest.mark.parametrize("check", FLOW_CHECKS, ids=lambda check: check.__name__)
@pytest.mark.parametrize("job", flows(), ids=lambda job: job.name)
def test_flow(job: RegisteredJob, check: FlowCheck) -> None:
    check(OBJECTS, job)


@pytest.mark.parametrize("check", CHECKS, ids=lambda check: check.__name__)
def test_manifests(check: Check) -> None:
    check(OBJECTS)


@pytest.mark.parametrize("workload", of_kind(OBJECTS, *WORKLOAD_KINDS), ids=object_id)
def test_settings_accept_the_values_given(
    workload: Manifest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What each process reads parses: a ConfigMap value such as `four` would fail here."""
    container = main_container(workload)
    for name, value in {**config_data(OBJECTS), **env_values(container)}.items():
        monkeypatch.setenv(name, value)
    Settings(_env_file=None)


# The checks themselves: each fails on a manifest broken the way it guards against.

ABSENT = object()  # a key that is not there, or a key to remove
Change = Callable[[Any], object]


def replace(old: object, new: object) -> Change:
    """`old` (or ABSENT) becomes `new` (or ABSENT). Should the manifest no longer hold `old`
    there, the breakage names the wrong thing: it fails, to be rewritten."""

    def change(current: object) -> object:
        assert current == old, f"expected {old!r}, found {current!r}"
        return new

    return change


def rename(old_part: str, new_part: str) -> Change:
    def change(current: str) -> str:
        assert old_part in current, f"no {old_part!r} in {current!r}"
        return current.replace(old_part, new_part)

    return change


@dataclass(frozen=True)
class Breakage:
    kind: str
    name: str
    path: tuple[str | int, ...]
    change: Change

    def apply(self, objects: list[Manifest]) -> None:
        parent: Any = find(objects, self.kind, self.name)
        for step in self.path[:-1]:
            parent = parent[step]
        last = self.path[-1]
        current = parent[last] if isinstance(last, int) else parent.get(last, ABSENT)
        new = self.change(current)
        if new is ABSENT:
            del parent[last]
        else:
            parent[last] = new


POINTS = registered("points")
MAIN_CONTAINER = ("spec", "template", "spec", "containers", 0)
INIT_CONTAINER = ("spec", "template", "spec", "initContainers", 0)
PARTITIONS = int(config_data(OBJECTS)["FLOW_RECOVERY_PARTITIONS"])


def on_points(check: FlowCheck) -> Check:
    return lambda objects: check(objects, POINTS)


BREAKAGES = [
    pytest.param(
        Breakage("StatefulSet", "points", ("spec", "replicas"), lambda replicas: replicas + 1),
        on_points(check_flow_addresses),
        id="replicas-without-their-address",
    ),
    pytest.param(
        Breakage(
            "StatefulSet",
            "points",
            (*MAIN_CONTAINER, "env", 0, "value"),
            rename("points-peers", "points"),
        ),
        on_points(check_flow_addresses),
        id="address-outside-the-headless-service",
    ),
    pytest.param(
        Breakage("Service", "points-peers", ("spec", "clusterIP"), replace("None", ABSENT)),
        on_points(check_flow_has_headless_service),
        id="peers-service-not-headless",
    ),
    pytest.param(
        Breakage(
            "Service", "points-peers", ("spec", "publishNotReadyAddresses"), replace(True, ABSENT)
        ),
        on_points(check_flow_has_headless_service),
        id="peers-unresolvable-before-ready",
    ),
    pytest.param(
        Breakage(
            "Service",
            "points-peers",
            ("spec", "selector", "app.kubernetes.io/name"),
            replace("points", "pointz"),
        ),
        on_points(check_flow_has_headless_service),
        id="peers-service-selects-no-pod",
    ),
    pytest.param(
        Breakage(
            "StatefulSet",
            "points",
            (*MAIN_CONTAINER, "args", 0),
            replace(POINTS.target, "flows.points:flows()"),
        ),
        on_points(check_flow_runs_its_target),
        id="flow-runs-another-target",
    ),
    pytest.param(
        Breakage(
            "StatefulSet",
            "points",
            (*MAIN_CONTAINER, "volumeMounts", 0, "name"),
            replace("recovery", "tmp"),
        ),
        on_points(check_flow_recovery_store),
        id="store-on-a-scratch-volume",
    ),
    pytest.param(
        Breakage(
            "StatefulSet",
            "points",
            (*INIT_CONTAINER, "volumeMounts", 0, "mountPath"),
            replace("/data", "/init"),
        ),
        on_points(check_flow_recovery_store),
        id="store-created-on-another-path",
    ),
    pytest.param(
        Breakage(
            "StatefulSet",
            "points",
            (*MAIN_CONTAINER, "livenessProbe", "httpGet", "port"),
            replace("dataflow-api", "cluster"),
        ),
        on_points(check_flow_dataflow_api),
        id="flow-probe-on-the-cluster-port",
    ),
    pytest.param(
        Breakage("StatefulSet", "points", ("spec", "replicas"), lambda _replicas: PARTITIONS + 1),
        check_partitions_cover_processes,
        id="more-processes-than-partitions",
    ),
    pytest.param(
        Breakage("Deployment", "clock", ("spec", "replicas"), replace(1, 2)),
        check_module_jobs,
        id="two-clocks",
    ),
    pytest.param(
        Breakage(
            "Deployment",
            API,
            (*MAIN_CONTAINER, "readinessProbe", "httpGet", "path"),
            replace("/ready", "/health"),
        ),
        check_api,
        id="api-ready-while-its-servers-are-down",
    ),
    pytest.param(
        Breakage(
            "Deployment",
            API,
            (*MAIN_CONTAINER, "livenessProbe", "httpGet", "port"),
            replace("http", "grpc"),
        ),
        check_api,
        id="api-liveness-on-the-grpc-port",
    ),
    pytest.param(
        Breakage(
            "Deployment",
            API,
            (*MAIN_CONTAINER, "env", 0, "value"),
            replace(ALL_INTERFACES, "127.0.0.1"),
        ),
        check_api,
        id="api-bound-to-loopback",
    ),
    pytest.param(
        Breakage(
            "Deployment", API, (*MAIN_CONTAINER, "env", 0, "name"), replace("API_HOST", "API_HOTS")
        ),
        check_environment_names,
        id="misspelt-setting-in-env",
    ),
    pytest.param(
        Breakage(
            "ConfigMap", CONFIG_MAP, ("data", "MONGO_URI"), replace(ABSENT, "mongodb://mongo:27017")
        ),
        check_environment_names,
        id="misspelt-setting-in-the-config-map",
    ),
    pytest.param(
        Breakage(
            "Deployment",
            API,
            (*MAIN_CONTAINER, "env", 3, "valueFrom", "secretKeyRef", "name"),
            replace(SECRET, "loyalnest-secret"),
        ),
        check_environment_names,
        id="secret-from-another-secret",
    ),
    pytest.param(
        Breakage(
            "StatefulSet", "points", (*MAIN_CONTAINER, "args", 4), rename("SECONDS)", "SECOND)")
        ),
        check_variable_references,
        id="argument-from-an-unset-variable",
    ),
    pytest.param(
        Breakage(
            "Deployment", "rfm-rounds", ("metadata", "name"), replace("rfm-rounds", "rfm-round")
        ),
        check_workloads_match_registry,
        id="module-job-renamed",
    ),
]


@pytest.mark.parametrize(("breakage", "check"), BREAKAGES)
def test_check_fails_on_a_broken_manifest(breakage: Breakage, check: Check) -> None:
    objects = copy.deepcopy(OBJECTS)
    breakage.apply(objects)
    with pytest.raises(AssertionError):
        check(objects)


def test_schema_refuses_a_misspelt_field() -> None:
    api = copy.deepcopy(find(OBJECTS, "Deployment", API))
    api["spec"]["replica"] = api["spec"].pop("replicas")
    with pytest.raises(kubernetes_validate.ValidationError, match="'replica' was unexpected"):
        kubernetes_validate.validate(api, KUBERNETES_VERSION, strict=True)
