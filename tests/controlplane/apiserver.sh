#!/usr/bin/env bash
# Starts or stops the kube-apiserver of a control plane made by up.sh, leaving etcd and the
# controller-manager running. `start` waits until /readyz answers ok (up to 60 s).
#   apiserver.sh start|stop DIR
set -euo pipefail
cmd="${1:?usage: apiserver.sh start|stop DIR}" dir="${2:?usage: apiserver.sh start|stop DIR}"
log() { echo "[controlplane] $*" >&2; }
bin="$(cat "$dir/bin.path")"
pki="$dir/pki"
server="$(sed -n 's/^SERVER=//p' "$dir/env")"
case "$cmd" in
  start)
    mapfile -t args < "$dir/kube-apiserver.args"
    setsid "$bin/kube-apiserver" "${args[@]}" >>"$dir/logs/kube-apiserver.log" 2>&1 < /dev/null &
    pid=$!
    echo $pid > "$dir/kube-apiserver.pid"
    for i in $(seq 1 300); do
      if curl -fsS --cacert "$pki/ca.crt" --cert "$pki/admin.crt" --key "$pki/admin.key" \
          "$server/readyz" >/dev/null 2>&1; then
        log "kube-apiserver ready after $((i / 5))s"
        exit 0
      fi
      if ! kill -0 "$pid" 2>/dev/null; then
        log "kube-apiserver exited; last lines of $dir/logs/kube-apiserver.log:"
        tail -30 "$dir/logs/kube-apiserver.log" >&2
        exit 1
      fi
      sleep 0.2
    done
    log "kube-apiserver not ready after 60s; see $dir/logs/kube-apiserver.log"
    tail -30 "$dir/logs/kube-apiserver.log" >&2
    exit 1
    ;;
  stop)
    if [ -f "$dir/kube-apiserver.pid" ]; then
      pid="$(cat "$dir/kube-apiserver.pid")"
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
      kill -KILL "$pid" 2>/dev/null || true
      rm -f "$dir/kube-apiserver.pid"
    fi
    ;;
  *) echo "usage: apiserver.sh start|stop DIR" >&2; exit 2 ;;
esac
