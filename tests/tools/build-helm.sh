#!/usr/bin/env bash
# Builds Helm (v3) from the Go module proxy for the chart tests and caches it outside the clone,
# keyed by version. Prints the path of the binary on stdout; progress goes to stderr.
#
#   helm="$(tests/tools/build-helm.sh)"
#
# HELM_VERSION overrides the version; CRMRISK_CACHE_DIR (or XDG_CACHE_HOME) moves the cache.
set -euo pipefail
HELM_VERSION="${HELM_VERSION:-v3.22.0}"
cache_root="${CRMRISK_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/crm-risk-operator}"
dir="$cache_root/helm/$HELM_VERSION"
log() { echo "[helm] $*" >&2; }

if [ -x "$dir/helm" ]; then
  log "using cached $dir/helm"
  echo "$dir/helm"; exit 0
fi

command -v go >/dev/null || { log "error: Go is required to build Helm (install golang >= 1.24)"; exit 1; }
log "building Helm $HELM_VERSION into $dir (a few minutes, once)"
start=$(date +%s)
mkdir -p "$dir"
tmp="$(mktemp -d "$dir/.build.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
# The version is stamped the way Helm's own Makefile does it, so `helm version` is truthful.
CGO_ENABLED=0 GOBIN="$tmp" GOTOOLCHAIN=local GOFLAGS=-mod=mod go install -trimpath \
  -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=${HELM_VERSION} -X helm.sh/helm/v3/internal/version.gitTreeState=clean" \
  "helm.sh/helm/v3/cmd/helm@${HELM_VERSION}"
[ -x "$tmp/helm" ] || { log "error: helm was not built"; exit 1; }
mv "$tmp/helm" "$dir/helm"
log "built in $(( $(date +%s) - start ))s: $("$dir/helm" version --short 2>/dev/null || echo "$dir/helm")"
echo "$dir/helm"
