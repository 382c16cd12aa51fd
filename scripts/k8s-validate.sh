#!/usr/bin/env bash
# `make k8s-validate`: render the Kubernetes base (kubectl kustomize, offline) and validate every
# resource strictly (unknown fields refused) against the Kubernetes version below, with the
# schemas kubernetes-validate ships (no network). A resource it has no schema for fails too.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${SESPCL_VENV:-$REPO/.venv}"
# The newest Kubernetes the pinned kubernetes-validate (requirements-dev.txt) has schemas for.
KUBERNETES_VERSION=1.37.0

command -v kubectl >/dev/null || { echo "k8s-validate: kubectl is missing (apt-get install kubernetes-client)" >&2; exit 1; }
rendered="$(mktemp --suffix=.yaml)"
trap 'rm -f -- "$rendered"' EXIT
kubectl kustomize "$REPO/deploy/k8s" >"$rendered"

status=0
report="$("$VENV/bin/kubernetes-validate" --strict --kubernetes-version "$KUBERNETES_VERSION" "$rendered")" || status=$?
problems="$(grep -v '^INFO ' <<<"$report" || true)"
if ((status != 0)) || [[ -n $problems ]]; then
    printf '%s\n' "${problems:-$report}" >&2
    echo "k8s-validate: deploy/k8s does not validate against Kubernetes $KUBERNETES_VERSION" >&2
    exit 1
fi
echo "k8s-validate: $(grep -c '^INFO ' <<<"$report") resources of deploy/k8s valid against Kubernetes $KUBERNETES_VERSION (strict)"
