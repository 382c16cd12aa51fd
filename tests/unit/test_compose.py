"""docker-compose.yml keeps least privilege: every secret required (no defaults to guess), each
service on its own database role, and the AMI secrets only where they are used."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

COMPOSE = Path(__file__).resolve().parents[2] / "docker-compose.yml"
INTERPOLATION = re.compile(r"\$\{([A-Z_]+)(:?[-?+][^}]*)?\}")
ROLES = {"migrate": "sespcl_owner", "admin": "sespcl_owner", "upkeep": "sespcl_owner", "api": "sespcl_api",
         "dispatcher": "sespcl_dispatcher", "worker": "sespcl_worker",
         "webhooks": "sespcl_webhooks"}  # fmt: skip


def _services() -> dict[str, Any]:
    services: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())["services"]
    return services


def test_every_variable_is_required_never_defaulted() -> None:
    found = INTERPOLATION.findall(COMPOSE.read_text())
    assert found, "the file takes its secrets from the environment"
    loose = sorted({name for name, rule in found if not rule.startswith(":?")})
    assert loose == [], f"these have a default or may be empty: {loose}"


def test_each_service_connects_to_postgresql_as_its_own_role() -> None:
    for name, role in ROLES.items():
        url = _services()[name]["environment"]["DATABASE_URL"]
        assert url.startswith(f"postgresql://{role}:"), (name, url)
    node = _services()["asterisk"]["environment"]
    assert node["SESPCL_ASTERISK_DB_USER"] == "sespcl_node"
    text = COMPOSE.read_text()
    assert "postgresql://postgres" not in text


def test_ami_and_ari_secrets_sit_only_where_they_are_used() -> None:
    holders = {
        name
        for name, service in _services().items()
        for key in (service.get("environment") or {})
        if key in ("SESPCL_AMI_SECRET", "SESPCL_AMI_ADMIN_SECRET", "SESPCL_ARI_PASSWORD")
    }
    assert holders == {"admin", "asterisk"}


def test_redis_requires_its_password_and_every_client_gives_it() -> None:
    redis = _services()["redis"]
    assert "requirepass" in " ".join(redis["command"])
    for name in ("api", "dispatcher", "worker"):
        assert _services()[name]["environment"]["REDIS_URL"].startswith("redis://:${REDIS_PASSWORD:?")


def test_every_long_running_service_has_a_liveness_healthcheck() -> None:
    for name in ("api", "dispatcher", "worker", "upkeep", "webhooks", "postgres", "redis"):
        check = _services()[name]["healthcheck"]
        assert not check.get("disable") and check["test"], name
    assert _services()["dispatcher"]["healthcheck"]["test"] == ["CMD", "sespcl", "alive"]


def test_the_webhook_secret_sits_only_with_the_sender() -> None:
    holders = {
        name
        for name, service in _services().items()
        if "SESPCL_WEBHOOK_SECRET" in (service.get("environment") or {})
    }
    assert holders == {"webhooks"}
