"""The Kubernetes base (deploy/k8s), rendered by `kubectl kustomize`, holds what issue 20 asks:
two or more API replicas behind probes and a disruption budget, two or more dispatchers, workers
scaled on the render queue, the nodes on the host network, every container with requests and
limits, every secret from the Secret, each process on its own database role, real commands, the
project's two images. (The network: test_k8s_network.py; the node's scripts:
test_k8s_node_scripts.py; the schemas: `make k8s-validate`.)"""

from __future__ import annotations

import re

import yaml
from annotated_types import Le

from orchestrator.api.schemas import CallIn
from orchestrator.config import Settings
from tests.unit.k8s_manifests import (
    BASE,
    SECRET,
    Resource,
    check_sespcl_command,
    containers,
    env,
    every_container,
    of_kind,
    one,
    pod_template,
    rendered,
    secret_key,
    selects,
    workloads,
)

ORCHESTRATOR = ("api", "dispatcher", "worker", "upkeep", "webhooks", "admin", "migrate", "prune-cdr")
ROLES = {  # container -> (database role, the Secret's key of its password)
    "api/api": ("sespcl_api", "SESPCL_DB_API_PASSWORD"),
    "dispatcher/dispatcher": ("sespcl_dispatcher", "SESPCL_DB_DISPATCHER_PASSWORD"),
    "worker/worker": ("sespcl_worker", "SESPCL_DB_WORKER_PASSWORD"),
    "webhooks/webhooks": ("sespcl_webhooks", "SESPCL_DB_WEBHOOKS_PASSWORD"),
    "asterisk/registrar": ("sespcl_node", "SESPCL_DB_NODE_PASSWORD"),
    "upkeep/upkeep": ("sespcl_owner", "SESPCL_DB_OWNER_PASSWORD"),
    "migrate/migrate": ("sespcl_owner", "SESPCL_DB_OWNER_PASSWORD"),
    "prune-cdr/prune-cdr": ("sespcl_owner", "SESPCL_DB_OWNER_PASSWORD"),
    "admin/admin": ("sespcl_owner", "SESPCL_DB_OWNER_PASSWORD"),
}
SECRET_LIKE = re.compile(r"PASSWORD|SECRET|KEY|TOKEN", re.IGNORECASE)
PASSWORD_IN_URL = re.compile(r"://[^/@\s]*:(?!\$\()[^/@\s]+@")
HEARTBEAT_DIR = "/tmp"
PROBES = ("livenessProbe", "readinessProbe", "startupProbe")


def _probe_path(container: Resource, probe: str) -> tuple[str, int]:
    get = container[probe]["httpGet"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    return get["path"], ports.get(get["port"], get["port"])


def _holders(resources: list[Resource], key: str) -> set[str]:
    return {name for name, c in every_container(resources) if key in {secret_key(e) for e in env(c).values()}}


def test_every_workload_is_there() -> None:
    names = {w["metadata"]["name"] for w in workloads(rendered())}
    assert names == {*ORCHESTRATOR, "asterisk"}


def test_the_api_runs_two_or_more_replicas_ready_on_health_and_live_on_health_live() -> None:
    resources = rendered()
    api = one(resources, "Deployment", "api")
    assert api["spec"]["replicas"] >= 2
    (container,) = containers(api)
    assert _probe_path(container, "readinessProbe") == ("/health", 5000)
    assert _probe_path(container, "livenessProbe") == ("/health/live", 5000)
    labels = pod_template(api)["metadata"]["labels"]
    budgets = [p for p in of_kind(resources, "PodDisruptionBudget") if selects(p["spec"]["selector"], labels)]
    assert len(budgets) == 1, "one PodDisruptionBudget guards the API"
    budget = budgets[0]["spec"]
    assert budget.get("minAvailable", 0) >= 1 or budget["maxUnavailable"] < api["spec"]["replicas"]
    service = one(resources, "Service", "sespcl-api")["spec"]
    assert service.get("clusterIP") != "None" and selects({"matchLabels": service["selector"]}, labels)
    assert [p["port"] for p in service["ports"]] == [5000]


def test_two_or_more_dispatchers_and_every_background_process_live_on_its_heartbeat() -> None:
    resources = rendered()
    assert one(resources, "Deployment", "dispatcher")["spec"]["replicas"] >= 2
    settings = one(resources, "ConfigMap", _settings_name(resources))["data"]
    assert settings["SESPCL_HEARTBEAT_FILE"].startswith(HEARTBEAT_DIR + "/")
    for name in ("dispatcher", "worker", "upkeep", "webhooks"):
        (container,) = containers(one(resources, "Deployment", name))
        assert container["livenessProbe"]["exec"]["command"] == ["sespcl", "alive"], name
        # The root file system is read-only: the heartbeat needs a volume to be written to.
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert HEARTBEAT_DIR in {m["mountPath"] for m in container["volumeMounts"]}, name


def test_every_container_requests_and_limits_cpu_and_memory() -> None:
    for name, container in every_container(rendered()):
        resources = container.get("resources", {})
        for bound in ("requests", "limits"):
            assert set(resources.get(bound, {})) >= {"cpu", "memory"}, (name, bound)


def test_the_workers_scale_on_the_render_queue_that_upkeep_exports() -> None:
    resources = rendered()
    (hpa,) = of_kind(resources, "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "worker"}
    (metric,) = hpa["spec"]["metrics"]
    assert metric["type"] == "External"
    assert metric["external"]["metric"]["name"] == "sespcl_render_queue_depth"
    assert 1 <= hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"]
    exporter = (BASE.parents[1] / "orchestrator/observability/backlog_metrics.py").read_text()
    assert '"sespcl_render_queue_depth"' in exporter, "the metric the HPA asks for is one upkeep exports"
    # Applying the base again must not undo the autoscaler's choice.
    assert "replicas" not in one(resources, "Deployment", "worker")["spec"]


def test_upkeep_runs_alone_and_the_schema_is_migrated_by_a_job() -> None:
    resources = rendered()
    upkeep = one(resources, "Deployment", "upkeep")["spec"]
    assert upkeep["replicas"] == 1 and upkeep["strategy"]["type"] == "Recreate"
    (migrate,) = containers(one(resources, "Job", "migrate"))
    assert migrate["command"] == ["sespcl", "db", "migrate"]


def test_no_secret_is_written_in_the_manifests() -> None:
    resources = rendered()
    assert not of_kind(resources, "Secret"), "the operator's own: applying the base never overwrites it"
    example = _secret_example()
    assert set(example.values()) == {"REPLACE_ME"}, "secret.example.env holds placeholders only"
    for name, container in every_container(resources):
        for entry in env(container).values():
            if "value" in entry:
                assert not SECRET_LIKE.search(entry["name"]), (name, entry["name"])
                assert not PASSWORD_IN_URL.search(str(entry["value"])), (name, entry["name"])
            elif (ref := entry["valueFrom"].get("secretKeyRef")) is not None:
                assert ref["name"] == SECRET and ref["key"] in example, (name, ref)
    for config in of_kind(resources, "ConfigMap"):
        assert not any(SECRET_LIKE.search(key) for key in config["data"]), config["metadata"]["name"]


def test_each_process_connects_as_its_own_database_role() -> None:
    resources = rendered()
    seen = set()
    for name, container in every_container(resources):
        variables = env(container)
        if "DATABASE_URL" not in variables:
            continue
        role, password = ROLES[name]
        assert variables["DATABASE_URL"]["value"] == f"postgresql://{role}@postgres:5432/sespcl", name
        assert secret_key(variables["PGPASSWORD"]) == password, name
        seen.add(name)
    assert seen == set(ROLES)
    node = env(_container(resources, "asterisk/asterisk"))
    assert node["SESPCL_ASTERISK_DB_USER"]["value"] == "sespcl_node"
    assert secret_key(node["SESPCL_ASTERISK_DB_PASSWORD"]) == "SESPCL_DB_NODE_PASSWORD"


def test_each_secret_sits_only_where_it_is_used() -> None:
    resources = rendered()
    node_and_cli = {"asterisk/asterisk", "asterisk/registrar", "admin/admin"}
    assert (
        _holders(resources, "SESPCL_AMI_SECRET") == _holders(resources, "SESPCL_ARI_PASSWORD") == node_and_cli
    )
    assert _holders(resources, "SESPCL_AMI_ADMIN_SECRET") == {"asterisk/asterisk", "admin/admin"}
    assert _holders(resources, "SESPCL_WEBHOOK_SECRET") == {"webhooks/webhooks"}
    assert _holders(resources, "SESPCL_API_KEY") == {"api/api"}
    redis = _holders(resources, "REDIS_PASSWORD")
    assert redis == {"api/api", "dispatcher/dispatcher", "worker/worker", "upkeep/upkeep", "admin/admin"}


def test_every_variable_a_value_refers_to_is_defined_before_it() -> None:
    resources = rendered()
    settings = set(one(resources, "ConfigMap", _settings_name(resources))["data"])
    for name, container in every_container(resources):
        defined = settings if container.get("envFrom") else set()
        for entry in container.get("env", []):
            for reference in re.findall(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", str(entry.get("value", ""))):
                assert reference in defined, (name, entry["name"], reference)
            defined = defined | {entry["name"]}


def test_every_setting_given_to_the_orchestrator_is_one_it_reads() -> None:
    """A misspelt SESPCL_* variable would be ignored without a word (extra="ignore")."""
    resources = rendered()
    known = {f"SESPCL_{name.upper()}" for name in Settings.model_fields}
    read_by_name = {"SESPCL_AMI_SECRET", "SESPCL_ARI_PASSWORD"}  # `nodes add --ami-secret-env` and such
    node_scripts = {"SESPCL_NODE_NAME", "SESPCL_NODE_ADDRESS", "SESPCL_NODE_DRIVER"}  # node/registrar.sh
    given = set(one(resources, "ConfigMap", _settings_name(resources))["data"])
    for _, container in every_container(resources):
        if container["image"].startswith("sespclswitch/orchestrator:"):
            given |= set(env(container))
    unknown = {v for v in given if v.startswith("SESPCL_")} - known - read_by_name - node_scripts
    assert unknown == set()


def test_every_command_is_one_sespcl_has() -> None:
    checked = 0
    for _, container in every_container(rendered()):
        probes = [container.get(p, {}).get("exec", {}).get("command", []) for p in PROBES]
        for command in (container.get("command", []), *probes):
            if command[:1] == ["sespcl"]:
                check_sespcl_command(command[1:])
                checked += 1
    assert checked >= 12


def test_every_container_runs_one_of_the_two_images_at_the_kustomization_tag() -> None:
    kustomization = yaml.safe_load((BASE / "kustomization.yaml").read_text())
    tags = {image["name"]: image["newTag"] for image in kustomization["images"]}
    assert set(tags) == {"sespclswitch/orchestrator", "sespclswitch/asterisk"}
    for name, container in every_container(rendered()):
        image = "sespclswitch/asterisk" if name == "asterisk/asterisk" else "sespclswitch/orchestrator"
        assert container["image"] == f"{image}:{tags[image]}", name


def test_the_nodes_are_a_statefulset_on_the_host_network_one_per_host() -> None:
    resources = rendered()
    (farm,) = of_kind(resources, "StatefulSet")
    spec = pod_template(farm)["spec"]
    assert spec["hostNetwork"] is True
    assert spec["dnsPolicy"] == "ClusterFirstWithHostNet", "the cluster's DNS: `postgres` must resolve"
    (rule,) = spec["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert rule["topologyKey"] == "kubernetes.io/hostname"
    assert selects(rule["labelSelector"], pod_template(farm)["metadata"]["labels"])
    assert farm["spec"]["serviceName"] == "asterisk"
    for container in containers(farm):
        variables = env(container)
        assert variables["SESPCL_NODE_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
        assert variables["SESPCL_NODE_ADDRESS"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"


def test_a_node_that_starts_joins_and_one_that_goes_drains_before_asterisk_stops() -> None:
    farm = one(rendered(), "StatefulSet", "asterisk")
    asterisk, registrar = (c for c in containers(farm))
    assert asterisk["command"][1:] == [
        "/opt/sespcl/k8s/start-asterisk.sh",
        "/opt/sespcl/asterisk-config/docker-entrypoint.sh",
    ]
    assert registrar["command"][1:] == ["/opt/sespcl/k8s/registrar.sh", "join"]
    assert _pre_stop(registrar) == ["/opt/sespcl/k8s/registrar.sh", "drain"]
    assert _pre_stop(asterisk) == ["/opt/sespcl/k8s/drain-wait.sh"]
    shared = _mounts(asterisk) & _mounts(registrar)
    assert {"/opt/sespcl/k8s", "/run/sespcl-node"} <= shared, "the scripts and the drain signal"
    # Past the longest call a drain may have to wait for: the longest ring, then the longest
    # answered time, started just before the drain.
    (longest_ring,) = [m.le for m in CallIn.model_fields["ring_timeout_s"].metadata if isinstance(m, Le)]
    longest_call_s = longest_ring + Settings.model_fields["max_call_s"].default
    assert pod_template(farm)["spec"]["terminationGracePeriodSeconds"] > longest_call_s


def _secret_example() -> dict[str, str]:
    lines = (BASE / "secret.example.env").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def _settings_name(resources: list[Resource]) -> str:
    names = [config["metadata"]["name"] for config in of_kind(resources, "ConfigMap")]
    (name,) = [n for n in names if n.startswith("sespcl-settings-")]
    return str(name)


def _container(resources: list[Resource], qualified: str) -> Resource:
    return dict(every_container(resources))[qualified]


def _pre_stop(container: Resource) -> list[str]:
    """A preStop hook's command past its interpreter."""
    command: list[str] = container["lifecycle"]["preStop"]["exec"]["command"]
    return command[1:]


def _mounts(container: Resource) -> set[str]:
    return {mount["mountPath"] for mount in container["volumeMounts"]}
