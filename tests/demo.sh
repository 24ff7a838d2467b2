#!/usr/bin/env bash
# The README's main command: brings up a local control plane (etcd, kube-apiserver,
# kube-controller-manager built from the Go modules and cached) and shows it ready.
#   tests/demo.sh [--keep]    --keep leaves it running and prints how to use kubectl with it
set -euo pipefail
cd "$(dirname "$0")/.."
keep=false
[ "${1:-}" = "--keep" ] && keep=true

dir="${TMPDIR:-/tmp}/crmrisk-demo"
[ -d "$dir" ] && tests/controlplane/down.sh "$dir" 2>/dev/null || true
rm -rf "$dir"
if $keep; then
  env_out="$(tests/controlplane/up.sh --dir "$dir")"
else
  env_out="$(tests/controlplane/up.sh --dir "$dir" --watch-pid $$)"
  trap 'tests/controlplane/down.sh "$dir"' EXIT
fi
eval "$(echo "$env_out" | grep -E '^(KUBECONFIG|BIN)=')"
export KUBECONFIG
kubectl() { "$BIN/kubectl" "$@"; }

echo
echo "== versions"
kubectl version
echo
echo "== readiness (/readyz)"
kubectl get --raw '/readyz?verbose' | tail -3
echo
echo "== namespaces"
kubectl get namespaces
if $keep; then
  echo
  echo "The control plane keeps running. Use it with:"
  echo "  export KUBECONFIG=$KUBECONFIG; $BIN/kubectl get ns"
  echo "Stop it with: tests/controlplane/down.sh $dir"
fi
