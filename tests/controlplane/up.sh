#!/usr/bin/env bash
# Starts a local Kubernetes control plane: etcd, kube-apiserver (RBAC, own CA, service-account
# keys) and kube-controller-manager (garbage collector, Deployment -> ReplicaSet, ...), all on
# loopback with free ports. Prints `KEY=VALUE` lines on stdout (KUBECONFIG, NOBODY_KUBECONFIG,
# DIR, ...); logs go to stderr and to <dir>/logs.
#
#   up.sh [--dir DIR] [--watch-pid PID]
#
# --watch-pid: stop everything (down.sh) as soon as PID exits, however it exits. The Rust test
# harness passes its own PID so no process outlives a test run, even one that panics or is killed.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
dir="" watch_pid=""
while [ $# -gt 0 ]; do
  case "$1" in
    --dir) dir="$2"; shift 2 ;;
    --watch-pid) watch_pid="$2"; shift 2 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "up.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
log() { echo "[controlplane] $*" >&2; }

bin="$("$here/build.sh")"
[ -n "$dir" ] || dir="$(mktemp -d "${TMPDIR:-/tmp}/crmrisk-controlplane.XXXXXX")"
mkdir -p "$dir/logs" "$dir/pki"
dir="$(cd "$dir" && pwd)"
echo "$bin" > "$dir/bin.path"
log "state directory: $dir"

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# ---- PKI: a CA, the apiserver serving cert, client certs, service-account keys ----
pki="$dir/pki"
if [ ! -f "$pki/ca.crt" ]; then
  (
    cd "$pki"
    openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 3650 \
      -subj "/CN=crmrisk-test-ca" 2>/dev/null
    cat > serving.ext <<EXT
subjectAltName=DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,IP:127.0.0.1,IP:10.0.0.1
extendedKeyUsage=serverAuth
EXT
    openssl req -newkey rsa:2048 -nodes -keyout apiserver.key -out apiserver.csr -subj "/CN=kube-apiserver" 2>/dev/null
    openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out apiserver.crt \
      -days 3650 -extfile serving.ext 2>/dev/null
    echo "extendedKeyUsage=clientAuth" > client.ext
    client() { # name subject
      openssl req -newkey rsa:2048 -nodes -keyout "$1.key" -out "$1.csr" -subj "$2" 2>/dev/null
      openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -out "$1.crt" \
        -days 3650 -extfile client.ext 2>/dev/null
    }
    client admin "/O=system:masters/CN=crmrisk-admin"
    client controller-manager "/CN=system:kube-controller-manager"
    # The non-admin identity: authenticated, member of no group, bound to nothing.
    client nobody "/CN=crmrisk-nobody"
    openssl genrsa -out sa.key 2048 2>/dev/null
    openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
    rm -f ./*.csr
  )
fi

etcd_port=$(free_port); peer_port=$(free_port); api_port=$(free_port)
while [ "$api_port" = "$etcd_port" ] || [ "$api_port" = "$peer_port" ]; do api_port=$(free_port); done
server="https://127.0.0.1:${api_port}"

kubeconfig() { # file user cert key
  cat > "$1" <<KC
apiVersion: v1
kind: Config
clusters:
- name: crmrisk-test
  cluster:
    server: ${server}
    certificate-authority: ${pki}/ca.crt
users:
- name: $2
  user:
    client-certificate: ${pki}/$3.crt
    client-key: ${pki}/$3.key
contexts:
- name: $2@crmrisk-test
  context: {cluster: crmrisk-test, user: $2}
current-context: $2@crmrisk-test
KC
}
kubeconfig "$dir/admin.kubeconfig" crmrisk-admin admin
kubeconfig "$dir/nobody.kubeconfig" crmrisk-nobody nobody
kubeconfig "$dir/controller-manager.kubeconfig" controller-manager controller-manager

# Arguments are kept in files so apiserver.sh can stop and start the apiserver alone
# (the operator's tests restart it to prove recovery).
cat > "$dir/etcd.args" <<ARGS
--name=default
--data-dir=$dir/etcd-data
--listen-client-urls=http://127.0.0.1:${etcd_port}
--advertise-client-urls=http://127.0.0.1:${etcd_port}
--listen-peer-urls=http://127.0.0.1:${peer_port}
--initial-advertise-peer-urls=http://127.0.0.1:${peer_port}
--initial-cluster=default=http://127.0.0.1:${peer_port}
--unsafe-no-fsync=true
--quota-backend-bytes=4294967296
--log-level=warn
ARGS
cat > "$dir/kube-apiserver.args" <<ARGS
--advertise-address=127.0.0.1
--bind-address=127.0.0.1
--secure-port=${api_port}
--etcd-servers=http://127.0.0.1:${etcd_port}
--tls-cert-file=${pki}/apiserver.crt
--tls-private-key-file=${pki}/apiserver.key
--client-ca-file=${pki}/ca.crt
--authorization-mode=RBAC
--service-cluster-ip-range=10.0.0.0/24
--service-account-issuer=https://kubernetes.default.svc.cluster.local
--service-account-key-file=${pki}/sa.pub
--service-account-signing-key-file=${pki}/sa.key
--allow-privileged=true
--enable-priority-and-fairness=false
--profiling=false
--v=1
ARGS
cat > "$dir/kube-controller-manager.args" <<ARGS
--kubeconfig=$dir/controller-manager.kubeconfig
--authentication-kubeconfig=$dir/controller-manager.kubeconfig
--authorization-kubeconfig=$dir/controller-manager.kubeconfig
--bind-address=127.0.0.1
--secure-port=0
--leader-elect=false
--use-service-account-credentials=true
--service-account-private-key-file=${pki}/sa.key
--root-ca-file=${pki}/ca.crt
--controllers=*,-nodeipam,-nodelifecycle,-cloud-node-lifecycle,-service-lb-controller,-route,-persistentvolume-binder,-attachdetach,-persistentvolume-expander
--concurrent-gc-syncs=5
--v=1
ARGS
cat > "$dir/env" <<ENV
KUBECONFIG=$dir/admin.kubeconfig
NOBODY_KUBECONFIG=$dir/nobody.kubeconfig
NOBODY_USER=crmrisk-nobody
SERVER=${server}
DIR=$dir
BIN=$bin
ENV

start() { # name: starts bin/<name> with <name>.args, detached from our process group
  local name="$1"
  mapfile -t args < "$dir/$name.args"
  setsid "$bin/$name" "${args[@]}" >>"$dir/logs/$name.log" 2>&1 < /dev/null &
  echo $! > "$dir/$name.pid"
}
export -f start 2>/dev/null || true

# From here on, a failure tears everything down again.
trap 'log "start failed; logs are in $dir/logs"; "$here/down.sh" "$dir" >&2 || true' ERR

start etcd
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:${etcd_port}/health" >/dev/null 2>&1 && break
  kill -0 "$(cat "$dir/etcd.pid")" 2>/dev/null || { log "etcd exited:"; tail -20 "$dir/logs/etcd.log" >&2; false; }
  sleep 0.2
done
"$here/apiserver.sh" start "$dir"
start kube-controller-manager

if [ -n "$watch_pid" ]; then
  # Watchdog: tear down as soon as the owner is gone (or down.sh removed the marker).
  touch "$dir/running"
  setsid bash -c "while kill -0 $watch_pid 2>/dev/null && [ -f '$dir/running' ]; do sleep 0.5; done; '$here/down.sh' '$dir'" \
    >>"$dir/logs/watchdog.log" 2>&1 < /dev/null &
  echo $! > "$dir/watchdog.pid"
fi
trap - ERR

version=$("$bin/kubectl" --kubeconfig "$dir/admin.kubeconfig" version -o json 2>/dev/null | jq -r '.serverVersion.gitVersion' || echo unknown)
log "control plane ready at ${server} (kube-apiserver ${version}); stop it with: $here/down.sh $dir"
cat "$dir/env"
