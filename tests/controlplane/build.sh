#!/usr/bin/env bash
# Builds kube-apiserver, kube-controller-manager, kubectl and etcd from the Go module proxy
# and caches them outside the clone, keyed by version. Prints the bin directory on stdout.
#
# Why a wrapper module: k8s.io/kubernetes pins its staging modules (k8s.io/api, ...) at
# v0.0.0 with local `replace` directives, which Go ignores for a dependency. The wrapper
# re-creates that replace block against the published staging versions (v0.X.Y for v1.X.Y),
# generated from the upstream go.mod so it never drifts from the pinned release.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"

cache_root="${CRMRISK_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/crm-risk-operator}"
key="k8s-${K8S_VERSION}_etcd-${ETCD_VERSION}_$(go env GOOS)-$(go env GOARCH)"
bin="$cache_root/controlplane/$key/bin"
log() { echo "[controlplane] $*" >&2; }

want=(kube-apiserver kube-controller-manager kubectl etcd)
have_all() { for b in "${want[@]}"; do [ -x "$bin/$b" ] || return 1; done; }

if have_all; then
  log "using cached binaries in $bin (k8s $K8S_VERSION, etcd $ETCD_VERSION)"
  echo "$bin"; exit 0
fi

command -v go >/dev/null || { log "error: Go is required to build the control plane (install golang >= 1.24)"; exit 1; }
log "building control plane binaries (k8s $K8S_VERSION, etcd $ETCD_VERSION) into $bin"
log "a cold build takes roughly 10-25 minutes on 2 cores; later runs reuse the cache"
start=$(date +%s)
work="$cache_root/controlplane/$key/src"
mkdir -p "$work/k8s" "$work/etcd" "$bin.tmp"
export CGO_ENABLED=0 GOFLAGS=-mod=mod GOTOOLCHAIN=local

# ---- Kubernetes ----
upstream_mod="$(go mod download -json "k8s.io/kubernetes@${K8S_VERSION}" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')"
[ -f "$upstream_mod" ] || { log "error: could not download k8s.io/kubernetes@${K8S_VERSION}"; exit 1; }
staging_version="v0.${K8S_VERSION#v1.}"
{
  echo "module crmrisk.local/controlplane/k8s"
  echo
  echo "go 1.24.0"
  echo
  grep -E '^godebug ' "$upstream_mod" || true
  echo
  echo "require k8s.io/kubernetes ${K8S_VERSION}"
  echo
  echo "replace ("
  sed -n -E "s#^[[:space:]]*(k8s\.io/[a-z0-9-]+) => \./staging/src/k8s\.io/[a-z0-9-]+[[:space:]]*\$#\t\1 => \1 ${staging_version}#p" "$upstream_mod"
  echo ")"
} > "$work/k8s/go.mod"
n=$(grep -c "=> k8s.io" "$work/k8s/go.mod")
[ "$n" -gt 20 ] || { log "error: expected the staging replace block in the upstream go.mod, found $n entries"; exit 1; }
cp "$upstream_mod" "$work/k8s/upstream.go.mod"
ver_pkgs=(k8s.io/component-base/version k8s.io/client-go/pkg/version)
minor="${K8S_VERSION#v1.}"; minor="${minor%%.*}"
ldflags="-s -w"
for p in "${ver_pkgs[@]}"; do
  ldflags+=" -X $p.gitVersion=${K8S_VERSION} -X $p.gitMajor=1 -X $p.gitMinor=${minor} -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
done
(
  cd "$work/k8s"
  # Resolve the module graph once (fills go.sum) so the build itself is offline.
  go mod download k8s.io/kubernetes
  go build -trimpath -ldflags "$ldflags" -o "$bin.tmp/" \
    k8s.io/kubernetes/cmd/kube-apiserver \
    k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kubectl
)

# ---- etcd ----
# go.etcd.io/etcd/server/v3 is a `package main` module; its own go.mod replaces the sibling
# etcd modules with local paths, so the wrapper pins them to the same published version.
{
  echo "module crmrisk.local/controlplane/etcd"
  echo
  echo "go 1.24.0"
  echo
  echo "require go.etcd.io/etcd/server/v3 ${ETCD_VERSION}"
  echo
  echo "replace ("
  for m in api/v3 client/pkg/v3 client/v3 pkg/v3; do
    echo "	go.etcd.io/etcd/$m => go.etcd.io/etcd/$m ${ETCD_VERSION}"
  done
  echo ")"
} > "$work/etcd/go.mod"
(
  cd "$work/etcd"
  go mod download go.etcd.io/etcd/server/v3
  go build -trimpath -ldflags "-s -w" -o "$bin.tmp/etcd" go.etcd.io/etcd/server/v3
)

for b in "${want[@]}"; do [ -x "$bin.tmp/$b" ] || { log "error: $b was not built"; exit 1; }; done
rm -rf "$bin"; mv "$bin.tmp" "$bin"
log "built in $(( $(date +%s) - start ))s: $(ls "$bin" | tr '\n' ' ')"
echo "$bin"
