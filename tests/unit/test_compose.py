"""docker-compose.yml keeps least privilege: every secret required (no defaults to guess), each
service on its own database role, and the AMI secrets only where they are used. Its published
ports have defaults that leave `make up`'s stack alone, every node is the one template with a
name and ports of its own, and every long-running service has a healthcheck."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

COMPOSE = Path(__file__).resolve().parents[2] / "docker-compose.yml"
INTERPOLATION = re.compile(r"\$\{([A-Z0-9_]+)(:?[-?+][^}]*)?\}")
# Where and on which host ports the services listen: settings, not secrets, so they have defaults.
PUBLISHING = {"SESPCL_PUBLISH_ADDRESS", "SESPCL_API_PUBLISH_PORT", "SESPCL_SIP_PUBLISH_ADDRESS",
              "SESPCL_N1_SIP_PORT", "SESPCL_N1_RTP_START", "SESPCL_N1_RTP_END",
              "SESPCL_N2_SIP_PORT", "SESPCL_N2_RTP_START", "SESPCL_N2_RTP_END",
              "SESPCL_PROMETHEUS_PUBLISH_PORT", "SESPCL_GRAFANA_PUBLISH_PORT"}  # fmt: skip
# What `make up` listens on (scripts/stack.sh): the API, SIP on the nodes' and carriers' own
# loopback addresses (a wildcard bind of the same port would clash), the nodes' RTP, the
# processes' metrics, and the host's PostgreSQL and Redis.
HOST_STACK_PORTS = (
    {5000, 5060, 5061, 5062, 5432, 6379, 6000, 6002} | set(range(10000, 20000)) | set(range(9390, 9411))
)
ASTERISK_IMAGE = "sespclswitch/asterisk:local"
ROLES = {"migrate": "sespcl_owner", "admin": "sespcl_owner", "upkeep": "sespcl_owner", "api": "sespcl_api",
         "dispatcher": "sespcl_dispatcher", "worker": "sespcl_worker",
         "webhooks": "sespcl_webhooks"}  # fmt: skip


def _services() -> dict[str, Any]:
    services: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())["services"]
    return services


def _nodes() -> dict[str, Any]:
    return {name: service for name, service in _services().items() if service.get("image") == ASTERISK_IMAGE}


def _with_defaults(value: object) -> str:
    """A value as compose gives it when none of its variables is set."""
    return INTERPOLATION.sub(_default, str(value))


def _default(variable: re.Match[str]) -> str:
    rule = variable.group(2) or ""
    return rule[2:] if rule.startswith(":-") else ""


def _published(service: dict[str, Any]) -> list[tuple[str, range, range, str]]:
    """Each published mapping with defaults: host address, host ports, container ports, protocol."""
    mappings = []
    for spec in service.get("ports", []):
        text, _, protocol = _with_defaults(spec).partition("/")
        address, host, container = text.rsplit(":", 2) if text.count(":") == 2 else ("", *text.split(":"))
        mappings.append((address, _port_range(host), _port_range(container), protocol or "tcp"))
    return mappings


def _port_range(text: str) -> range:
    first, _, last = text.partition("-")
    return range(int(first), int(last or first) + 1)


def test_every_secret_is_required_only_where_to_listen_has_a_default() -> None:
    found = INTERPOLATION.findall(COMPOSE.read_text())
    assert found, "the file takes its secrets from the environment"
    loose = {name for name, rule in found if not rule.startswith(":?")}
    assert loose == PUBLISHING, f"these have a default or may be empty: {sorted(loose - PUBLISHING)}"
    assert not {name for name in loose if re.search("SECRET|PASSWORD|KEY", name)}


def test_each_service_connects_to_postgresql_as_its_own_role() -> None:
    for name, role in ROLES.items():
        url = _services()[name]["environment"]["DATABASE_URL"]
        assert url.startswith(f"postgresql://{role}:"), (name, url)
    assert _nodes(), "the file runs Asterisk nodes"
    for node in _nodes().values():
        assert node["environment"]["SESPCL_ASTERISK_DB_USER"] == "sespcl_node"
    text = COMPOSE.read_text()
    assert "postgresql://postgres" not in text


def test_ami_and_ari_secrets_sit_only_where_they_are_used() -> None:
    holders = {
        name
        for name, service in _services().items()
        for key in (service.get("environment") or {})
        if key in ("SESPCL_AMI_SECRET", "SESPCL_AMI_ADMIN_SECRET", "SESPCL_ARI_PASSWORD")
    }
    assert holders == {"admin", *_nodes()}


def test_redis_requires_its_password_and_every_client_gives_it() -> None:
    redis = _services()["redis"]
    assert "requirepass" in " ".join(redis["command"])
    for name in ("api", "dispatcher", "worker"):
        assert _services()[name]["environment"]["REDIS_URL"].startswith("redis://:${REDIS_PASSWORD:?")


def test_every_long_running_service_has_a_liveness_healthcheck() -> None:
    long_running = {name for name, service in _services().items() if service.get("restart") != "no"}
    assert {"api", "proxy", "dispatcher", "worker", "upkeep", "webhooks", "postgres", "redis"} <= long_running
    for name in long_running:
        check = _services()[name].get("healthcheck", {})
        assert not check.get("disable") and check.get("test"), name
        assert _services()[name].get("restart") == "unless-stopped", name
    for name in ("dispatcher", "worker", "upkeep", "webhooks"):
        assert _services()[name]["healthcheck"]["test"] == ["CMD", "sespcl", "alive"], name
    assert "/health/live" in _services()["api"]["healthcheck"]["test"][-1]


def test_each_node_is_the_template_with_a_name_rtp_range_and_sip_port_of_its_own() -> None:
    nodes = _nodes()
    assert len(nodes) >= 2
    names: set[str] = set()
    sip_ports: set[int] = set()
    rtp_ports: set[int] = set()
    for service_name, node in nodes.items():
        env = {key: _with_defaults(value) for key, value in node["environment"].items()}
        assert env["SESPCL_NODE_NAME"] == service_name, "registered under its service's name"
        rtp = range(int(env["SESPCL_RTP_START"]), int(env["SESPCL_RTP_END"]) + 1)
        by_container = {(mapping[2].start, mapping[3]): mapping for mapping in _published(node)}
        # RTP on the same numbers inside and out: SDP carries the node's own port numbers.
        assert by_container[(rtp.start, "udp")][1] == rtp == by_container[(rtp.start, "udp")][2]
        sip = {by_container[(5060, protocol)][1].start for protocol in ("udp", "tcp")}
        assert len(sip) == 1 and env["SESPCL_EXTERNAL_SIGNALING_PORT"] == str(sip.pop())
        names.add(env["SESPCL_NODE_NAME"])
        sip_ports.add(int(env["SESPCL_EXTERNAL_SIGNALING_PORT"]))
        assert not rtp_ports & set(rtp), f"{service_name}'s RTP range overlaps another node's"
        rtp_ports |= set(rtp)
    assert len(names) == len(sip_ports) == len(nodes)


def test_only_the_proxy_publishes_the_api_and_no_default_port_clashes_with_the_host_stack() -> None:
    assert "ports" not in _services()["api"], "a published port would stop --scale api=N"
    [(address, host, container, _)] = _published(_services()["proxy"])
    assert address == "127.0.0.1" and list(container) == [8080] and len(host) == 1
    for name, service in _services().items():
        for _, host_ports, _, _ in _published(service):
            assert not HOST_STACK_PORTS & set(host_ports), f"{name} publishes a port of make up's stack"


def test_the_webhook_secret_sits_only_with_the_sender() -> None:
    holders = {
        name
        for name, service in _services().items()
        if "SESPCL_WEBHOOK_SECRET" in (service.get("environment") or {})
    }
    assert holders == {"webhooks"}


def test_every_file_a_service_mounts_is_in_the_repository() -> None:
    # The one exception: the API key compose's Prometheus reads, which the operator makes.
    made_by_the_operator = {"./sespcl-api-key"}
    mounted = {
        volume.split(":")[0]
        for service in _services().values()
        for volume in service.get("volumes", [])
        if isinstance(volume, str) and volume.startswith("./")
    }
    assert "./deploy/postgres/initdb.sh" in mounted
    for source in mounted - made_by_the_operator:
        assert (COMPOSE.parent / source).exists(), f"{source} is mounted but not in the repository"
