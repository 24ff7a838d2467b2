#!/usr/bin/env bash
# Builds OPA from the Go module proxy for the engine benchmark and caches it outside the clone,
# keyed by version. Prints the path of the binary.
set -euo pipefail
OPA_VERSION="${OPA_VERSION:-v1.22.2}"
cache_root="${CRMRISK_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/crm-risk-operator}"
dir="$cache_root/opa/${OPA_VERSION}_$(go env GOOS)-$(go env GOARCH)"
if [ -x "$dir/opa" ]; then
  echo "[opa] using cached $dir/opa" >&2
  echo "$dir/opa"; exit 0
fi
echo "[opa] building OPA $OPA_VERSION into $dir (a few minutes, once)" >&2
mkdir -p "$dir"
CGO_ENABLED=0 GOBIN="$dir" GOTOOLCHAIN=local go install -trimpath -ldflags "-s -w" \
  "github.com/open-policy-agent/opa@${OPA_VERSION}"
"$dir/opa" version | head -1 >&2
echo "$dir/opa"
