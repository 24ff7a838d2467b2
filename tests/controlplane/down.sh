#!/usr/bin/env bash
# Stops a control plane started by up.sh and removes its etcd data. Logs stay in DIR/logs so a
# failed test can be looked into. Safe to run twice.
#   down.sh DIR
set -uo pipefail
dir="${1:?usage: down.sh DIR}"
[ -d "$dir" ] || exit 0
rm -f "$dir/running"
for name in kube-controller-manager kube-apiserver etcd; do
  f="$dir/$name.pid"
  [ -f "$f" ] || continue
  pid="$(cat "$f")"
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$f"
done
rm -rf "$dir/etcd-data"
echo "[controlplane] stopped; logs kept in $dir/logs" >&2
