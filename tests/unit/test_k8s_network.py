"""deploy/k8s's network: ingress refused by default; a node's AMI and ARI open to the dispatchers
(and AMI's greeting to the API's readiness and the admin CLI, 8088 to Prometheus), the API on
5000, metrics on 9400 to the monitoring namespace; the orchestrator's pods reach PostgreSQL and
Redis at the addresses the external Services hold, and nothing else they do not need; a headless
Service per workload for Prometheus's DNS discovery."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator

from tests.unit.k8s_manifests import (
    Resource,
    containers,
    env,
    every_container,
    of_kind,
    one,
    pod_labels,
    pod_template,
    rendered,
    selects,
    workloads,
)

MONITORING = "namespace:monitoring"
ORCHESTRATOR = ("api", "dispatcher", "worker", "upkeep", "webhooks", "admin", "migrate", "prune-cdr")
METRICS_PORTS = {"api": 5000, "asterisk": 8088} | dict.fromkeys(
    ("dispatcher", "worker", "upkeep", "webhooks"), 9400
)


def _covers(ports: list[Resource] | None, port: int, protocol: str = "TCP") -> bool:
    """Whether a rule's ports (none: every port) admit `port`."""
    if not ports:
        return True
    return any(
        p.get("protocol", "TCP") == protocol and int(p["port"]) <= port <= int(p.get("endPort") or p["port"])
        for p in ports
    )


def _policies(resources: list[Resource], labels: dict[str, str], direction: str) -> Iterator[Resource]:
    for policy in of_kind(resources, "NetworkPolicy"):
        spec = policy["spec"]
        if direction in spec["policyTypes"] and selects(spec["podSelector"], labels):
            yield policy


def _sources(resources: list[Resource], component: str, port: int, protocol: str = "TCP") -> set[str]:
    """Who may open `port` on the pods of `component`: "pods:<component>", "namespace:<name>",
    "anywhere"."""
    found: set[str] = set()
    for policy in _policies(resources, pod_labels(resources, component), "Ingress"):
        for rule in policy["spec"].get("ingress", []):
            if not _covers(rule.get("ports"), port, protocol):
                continue
            for peer in rule.get("from") or [{}]:
                if "namespaceSelector" in peer:
                    namespace = peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
                    found.add(f"namespace:{namespace}")
                elif "podSelector" in peer:
                    found |= {f"pods:{c}" for c in _selected(resources, peer["podSelector"])}
                else:
                    found.add("anywhere")
    return found


def _egress_allows(resources: list[Resource], component: str, port: int, address: str) -> bool:
    """Whether an egress rule of a policy selecting `component`'s pods admits `address`:`port`."""
    ip = ipaddress.ip_address(address)
    for policy in _policies(resources, pod_labels(resources, component), "Egress"):
        for rule in policy["spec"].get("egress", []):
            if not _covers(rule.get("ports"), port):
                continue
            for block in (peer["ipBlock"] for peer in rule["to"] if "ipBlock" in peer):
                network = ipaddress.ip_network(block["cidr"])
                excepted = any(ip in ipaddress.ip_network(e) for e in block.get("except", []))
                if ip.version == network.version and ip in network and not excepted:
                    return True
    return False


def _reaches(resources: list[Resource], component: str, service: str) -> bool:
    """Whether `component`'s pods may reach every address behind the external `service`."""
    port = one(resources, "Service", service)["spec"]["ports"][0]["port"]
    slices = of_kind(resources, "EndpointSlice")
    (endpoints,) = [s for s in slices if s["metadata"]["labels"]["kubernetes.io/service-name"] == service]
    addresses = [a for e in endpoints["endpoints"] for a in e["addresses"]]
    return bool(addresses) and all(_egress_allows(resources, component, port, a) for a in addresses)


def _selected(resources: list[Resource], selector: Resource) -> set[str]:
    """The components whose pods a pod selector selects."""
    components = {
        pod_template(w)["metadata"]["labels"]["app.kubernetes.io/component"] for w in workloads(resources)
    }
    return {c for c in components if selects(selector, pod_labels(resources, c))}


def test_ingress_is_refused_unless_a_policy_admits_it() -> None:
    deny = one(rendered(), "NetworkPolicy", "default-deny-ingress")["spec"]
    assert deny == {"podSelector": {}, "policyTypes": ["Ingress"]}


def test_ami_and_ari_are_open_to_the_dispatchers_only() -> None:
    resources = rendered()
    assert _sources(resources, "asterisk", 8088) == {"pods:dispatcher", MONITORING}
    # The API reads AMI's greeting for its readiness and never logs in; the admin CLI (scaled to
    # 0) logs in as the administrative user, which may not dial.
    assert _sources(resources, "asterisk", 5038) == {"pods:dispatcher", "pods:api", "pods:admin"}
    control = one(resources, "NetworkPolicy", "asterisk-control")["spec"]["ingress"]
    dialing = [peer for rule in control if _covers(rule["ports"], 5038) for peer in rule["from"]]
    assert [_selected(resources, peer["podSelector"]) for peer in dialing] == [{"dispatcher"}]


def test_sip_and_rtp_are_open_to_the_carriers() -> None:
    resources = rendered()
    assert _sources(resources, "asterisk", 5060, "UDP") == {"anywhere"}
    assert _sources(resources, "asterisk", 5061) == {"anywhere"}
    for rtp in (10000, 65535):
        assert _sources(resources, "asterisk", rtp, "UDP") == {"anywhere"}


def test_the_api_takes_requests_on_5000_and_metrics_are_scraped_from_monitoring() -> None:
    resources = rendered()
    assert _sources(resources, "api", 5000) == {"anywhere"}
    for component in ("dispatcher", "worker", "upkeep", "webhooks"):
        assert _sources(resources, component, 9400) == {MONITORING}, component
        assert _sources(resources, component, 5000) == set(), component


def test_postgresql_and_redis_are_reached_where_the_external_services_point() -> None:
    resources = rendered()
    for component in ORCHESTRATOR:
        assert _reaches(resources, component, "postgres"), component
    users = {name.split("/")[0] for name, c in every_container(resources) if "REDIS_URL" in env(c)}
    for component in ORCHESTRATOR:
        assert _reaches(resources, component, "redis") == (component in users), component
    assert users >= {"api", "dispatcher", "worker", "upkeep"}


def test_only_the_dispatchers_may_dial_the_nodes_and_only_the_webhook_sender_reaches_anywhere() -> None:
    resources = rendered()
    farm = "198.51.100.200"  # an Asterisk host, in the placeholder network
    for component in ORCHESTRATOR:
        assert _egress_allows(resources, component, 8088, farm) == (component == "dispatcher"), component
        greeted = _egress_allows(resources, component, 5038, farm)
        assert greeted == (component in ("dispatcher", "api", "admin")), component
        for receiver in ("203.0.113.80", "2001:db8::80"):
            assert _egress_allows(resources, component, 443, receiver) == (component == "webhooks"), component
    for private in ("10.1.2.3", "192.168.1.10", "169.254.169.254", "fd00::1"):
        assert not _egress_allows(resources, "webhooks", 80, private), private


def test_a_headless_service_names_every_replica_for_dns_discovery() -> None:
    resources = rendered()
    for name, port in METRICS_PORTS.items():
        service = one(resources, "Service", name)["spec"]
        assert service["clusterIP"] == "None", name
        assert selects({"matchLabels": service["selector"]}, pod_labels(resources, name)), name
        assert [p["port"] for p in service["ports"]] == [port], name
        (workload,) = [w for w in workloads(resources) if w["metadata"]["name"] == name]
        exposed = {p["containerPort"] for c in containers(workload) for p in c.get("ports", [])}
        assert port in exposed, name
