"""deploy/k8s as `kubectl kustomize` renders it, and the ways the unit tests read it: workloads and
their pods, label selectors, and whether a command line is one `sespcl` really has."""

from __future__ import annotations

import copy
import shutil
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from orchestrator.cli import main

REPO = Path(__file__).resolve().parents[2]
BASE = REPO / "deploy/k8s"
NODE_SCRIPTS = BASE / "node"
SECRET = "sespcl-secrets"
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "Job", "CronJob")

Resource = dict[str, Any]


@lru_cache(maxsize=1)
def _rendered() -> tuple[Resource, ...]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.fail("kubectl is missing, so deploy/k8s cannot be rendered: apt-get install kubernetes-client")
    done = subprocess.run([kubectl, "kustomize", str(BASE)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"kubectl kustomize deploy/k8s failed: {done.stderr}"
    return tuple(r for r in yaml.load_all(done.stdout, Loader=yaml.CSafeLoader) if r)


def rendered() -> list[Resource]:
    """Every resource of the base, a copy of its own for each test (none may change another's)."""
    return copy.deepcopy(list(_rendered()))


def one(resources: Sequence[Resource], kind: str, name: str) -> Resource:
    found = [r for r in resources if r["kind"] == kind and r["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


def of_kind(resources: Sequence[Resource], kind: str) -> list[Resource]:
    return [r for r in resources if r["kind"] == kind]


def pod_template(workload: Resource) -> Resource:
    spec = workload["spec"]
    if workload["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    template: Resource = spec["template"]
    return template


def workloads(resources: Sequence[Resource]) -> list[Resource]:
    return [r for r in resources if r["kind"] in WORKLOAD_KINDS]


def containers(workload: Resource) -> list[Resource]:
    spec = pod_template(workload)["spec"]
    return [*spec.get("initContainers", []), *spec["containers"]]


def every_container(resources: Sequence[Resource]) -> Iterator[tuple[str, Resource]]:
    """("<workload>/<container>", container) for every container of every workload."""
    for workload in workloads(resources):
        for container in containers(workload):
            yield f"{workload['metadata']['name']}/{container['name']}", container


def env(container: Resource) -> dict[str, Resource]:
    return {entry["name"]: entry for entry in container.get("env", [])}


def secret_key(entry: Resource) -> str | None:
    """The key of the Secret an env entry comes from, if it comes from one."""
    ref = entry.get("valueFrom", {}).get("secretKeyRef")
    return None if ref is None else str(ref["key"])


def selects(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """A label selector (matchLabels, matchExpressions In/NotIn/Exists) against a pod's labels."""
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        key, operator = expression["key"], expression["operator"]
        present = key in labels
        match operator:
            case "In":
                ok = present and labels[key] in expression["values"]
            case "NotIn":
                ok = not present or labels[key] not in expression["values"]
            case "Exists":
                ok = present
            case _:
                ok = not present
        if not ok:
            return False
    return True


def pod_labels(resources: Sequence[Resource], component: str) -> dict[str, str]:
    """The pod labels of the workload whose component label is `component`."""
    found = [
        pod_template(w)["metadata"]["labels"]
        for w in workloads(resources)
        if pod_template(w)["metadata"]["labels"].get("app.kubernetes.io/component") == component
    ]
    assert len(found) == 1, f"{len(found)} workloads of component {component}"
    return dict(found[0])


def check_sespcl_command(args: Sequence[str]) -> click.Command:
    """The command `sespcl <args>` runs, its options parsed as the CLI would (nothing invoked):
    click's UsageError if it has no such command or option."""
    command: click.Command = main
    context = click.Context(main, info_name="sespcl")
    rest = list(args)
    while isinstance(command, click.Group):
        assert rest, f"sespcl {' '.join(args)}: a group, no command"
        name = rest.pop(0)
        found = command.get_command(context, name)
        if found is None:
            raise click.UsageError(f"sespcl has no command {name!r} ({' '.join(args)})")
        command = found
        context = click.Context(command, info_name=name, parent=context)
    command.make_context(str(context.info_name), rest, parent=context.parent)
    return command
