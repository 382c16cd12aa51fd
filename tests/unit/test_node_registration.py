"""`sespcl nodes add --replace`, as each Asterisk pod registers itself on Kubernetes
(deploy/k8s/node/registrar.sh): a node already there takes its new address and keeps its drained
flag (the registrar undrains it in a step of its own), a new one is added, and without --replace
an existing name is refused. Two plain writes rather than an upsert, whose EXCLUDED.* would read
columns back that the node's role may not read (tests/integration/test_privileges.py asks
PostgreSQL itself)."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from click.testing import CliRunner

from orchestrator.cli import main

nodes_cli = importlib.import_module("orchestrator.cli.nodes")  # the package's `nodes` is the group

ADDRESS = "10.20.0.9"
REGISTER = ["nodes", "add", "asterisk-0", "--ami-host", ADDRESS, "--ari-url", f"http://{ADDRESS}:8088/ari"]


@dataclass
class _Written:
    rowcount: int


class _NodesTable:
    """The nodes table, as the CLI's two statements change it."""

    def __init__(self, rows: dict[str, dict[str, Any]]) -> None:
        self.rows = rows
        self.statements: list[str] = []

    def execute(self, sql: str, params: dict[str, Any]) -> _Written:
        self.statements.append(sql)
        name = params["name"]
        if sql == nodes_cli.REPLACE_NODE:
            if name not in self.rows:
                return _Written(0)
            self.rows[name] |= params
            return _Written(1)
        assert sql == nodes_cli.INSERT_NODE, sql
        if name in self.rows:
            return _Written(0)
        self.rows[name] = {**params, "drained": False}
        return _Written(1)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        yield


def _register(monkeypatch: pytest.MonkeyPatch, table: _NodesTable, *extra: str) -> tuple[int, str]:
    @contextmanager
    def database() -> Iterator[_NodesTable]:
        yield table

    monkeypatch.setattr(nodes_cli, "database", database)
    monkeypatch.setenv("SESPCL_AMI_SECRET", "ami-secret-for-tests")
    result = CliRunner().invoke(main, [*REGISTER, *extra])
    return result.exit_code, result.output


def test_a_node_back_from_a_drain_takes_its_new_address_and_stays_drained(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    table = _NodesTable({"asterisk-0": {"name": "asterisk-0", "ami_host": "10.20.0.5", "drained": True}})
    code, output = _register(monkeypatch, table, "--replace")
    assert (code, output) == (0, "node asterisk-0 added (ami)\n")
    assert table.statements == [nodes_cli.REPLACE_NODE]
    row = table.rows["asterisk-0"]
    assert (row["ami_host"], row["ari_url"], row["drained"]) == (ADDRESS, f"http://{ADDRESS}:8088/ari", True)
    assert row["ami_secret"] == "ami-secret-for-tests"


def test_a_new_node_is_added_with_or_without_replace(monkeypatch: pytest.MonkeyPatch) -> None:
    for extra in ((), ("--replace",)):
        table = _NodesTable({})
        code, output = _register(monkeypatch, table, *extra)
        assert code == 0, output
        assert table.statements[-1] == nodes_cli.INSERT_NODE
        assert table.rows["asterisk-0"]["ami_host"] == ADDRESS
        assert table.rows["asterisk-0"]["max_channels"] == 500


def test_without_replace_an_existing_name_is_refused_and_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    table = _NodesTable({"asterisk-0": {"name": "asterisk-0", "ami_host": "10.20.0.5", "drained": False}})
    code, output = _register(monkeypatch, table)
    assert code == 1
    assert "a node named 'asterisk-0' already exists" in output
    assert table.statements == [nodes_cli.INSERT_NODE]
    assert table.rows["asterisk-0"]["ami_host"] == "10.20.0.5"
