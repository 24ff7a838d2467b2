#!/usr/bin/env bash
# The README's main command (`make demo`): a local control plane (etcd, kube-apiserver,
# kube-controller-manager built from the Go modules and cached), the crmrisk CRDs, a risky and a
# hardened sample CRM stack, two CRMRiskPolicies, and the operator running under its own
# least-privilege ServiceAccount. Prints what a platform engineer would look at, then stops.
#
#   tests/demo.sh [--keep]   --keep leaves everything running and prints how to use kubectl
set -euo pipefail
cd "$(dirname "$0")/.."
keep=false
[ "${1:-}" = "--keep" ] && keep=true
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "building crmrisk"
cargo build -q -p crmrisk --bin crmrisk
crmrisk="$PWD/target/debug/crmrisk"

dir="${TMPDIR:-/tmp}/crmrisk-demo"
[ -f "$dir/operator.pid" ] && kill "$(cat "$dir/operator.pid")" 2>/dev/null || true
[ -d "$dir" ] && tests/controlplane/down.sh "$dir" 2>/dev/null || true
rm -rf "$dir"
say "starting a local control plane"
if $keep; then
  env_out="$(tests/controlplane/up.sh --dir "$dir")"
else
  env_out="$(tests/controlplane/up.sh --dir "$dir" --watch-pid $$)"
fi
eval "$(echo "$env_out" | grep -E '^(KUBECONFIG|BIN|SERVER)=')"
export KUBECONFIG
kubectl() { "$BIN/kubectl" "$@"; }
cleanup() {
  [ -f "$dir/operator.pid" ] && kill -TERM "$(cat "$dir/operator.pid")" 2>/dev/null && sleep 1
  tests/controlplane/down.sh "$dir"
}
$keep || trap cleanup EXIT
kubectl version | sed 's/^/  /'

say "installing the CRDs (crmrisk crd) and Velero stand-in CRDs"
"$crmrisk" crd | kubectl apply --server-side -f - >/dev/null
kubectl apply --server-side -f examples/crds/velero.yaml >/dev/null
kubectl wait --for=condition=Established --timeout=60s crd/crmriskpolicies.crmrisk.io crd/schedules.velero.io >/dev/null
kubectl create namespace crm-risk-operator >/dev/null
kubectl create namespace velero >/dev/null

say "operator identity: ServiceAccount crm-risk-operator bound to the chart's RBAC files only (no Secrets)"
kubectl apply -f charts/crm-risk-operator/files/clusterrole.yaml >/dev/null
kubectl -n crm-risk-operator create serviceaccount crm-risk-operator >/dev/null
kubectl create clusterrolebinding crm-risk-operator --clusterrole=crm-risk-operator \
  --serviceaccount=crm-risk-operator:crm-risk-operator >/dev/null
kubectl -n crm-risk-operator apply -f charts/crm-risk-operator/files/lease-role.yaml >/dev/null
token="$(kubectl -n crm-risk-operator create token crm-risk-operator --duration=24h)"
opconfig="$dir/operator.kubeconfig"
kubectl config view --raw --minify >"$opconfig"
KUBECONFIG="$opconfig" "$BIN/kubectl" config set-credentials operator --token="$token" >/dev/null
KUBECONFIG="$opconfig" "$BIN/kubectl" config set-context --current --user=operator >/dev/null
echo "  can it read Secrets? $(KUBECONFIG="$opconfig" "$BIN/kubectl" auth can-i list secrets -A 2>/dev/null || true)"

say "applying the sample CRM stacks (examples/risky, examples/hardened) and policies"
kubectl apply -f examples/risky/ -f examples/hardened/ | sed 's/^/  /'
# The controller-manager creates each namespace's default ServiceAccount; wait for it.
for ns in crm-risky crm-hardened; do
  for _ in $(seq 1 60); do kubectl -n "$ns" get serviceaccount default >/dev/null 2>&1 && break; sleep 0.5; done
done
kubectl apply -f examples/policies/ | sed 's/^/  /'

say "starting the operator (crmrisk run)"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
KUBECONFIG="$opconfig" POD_NAMESPACE=crm-risk-operator "$crmrisk" run --metrics-addr "127.0.0.1:$port" \
  >"$dir/logs/operator.log" 2>&1 &
echo $! >"$dir/operator.pid"
echo "  pid $(cat "$dir/operator.pid"), logs in $dir/logs/operator.log, metrics on http://127.0.0.1:$port/metrics"
for _ in $(seq 1 120); do
  n=$(kubectl get crp crm-baseline -o jsonpath='{.status.summary.workloadsMatched}' 2>/dev/null || true)
  [ "${n:-0}" -ge 6 ] && break
  sleep 0.5
done
sleep 1

say "kubectl get crmriskpolicies"
kubectl get crp
say "kubectl get crmriskreports -A"
kubectl get crr -A
say "kubectl describe crp crm-baseline (conditions and top findings)"
kubectl get crp crm-baseline -o jsonpath='{range .status.conditions[*]}  {.type}={.status} ({.reason}): {.message}{"\n"}{end}'
kubectl get crp crm-baseline -o jsonpath='{range .status.topFindings[*]}  {.score} {.band} {.id} {.workload.kind}/{.workload.namespace}/{.workload.name}: {.message}{"\n"}{end}' | sed -n 1,8p
say "recent Events"
kubectl get events -A --field-selector reason=RiskAboveTolerance --sort-by=.metadata.creationTimestamp 2>/dev/null | tail -6
say "Prometheus metrics (excerpt)"
curl -s "http://127.0.0.1:$port/metrics" | grep -E '^crmrisk_(workload_risk_score|workloads_above_tolerance)' | sed -n 1,8p
say "the same engine offline: crmrisk scan -f examples/risky"
"$crmrisk" scan -f examples/risky | head -12 || true

if $keep; then
  say "still running"
  echo "  export KUBECONFIG=$KUBECONFIG"
  echo "  $BIN/kubectl get crp,crr -A"
  echo "  stop: kill \$(cat $dir/operator.pid); tests/controlplane/down.sh $dir"
else
  say "stopping (run tests/demo.sh --keep to keep it running)"
fi
