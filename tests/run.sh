#!/usr/bin/env bash
# Runs every test: Rust unit tests, the Rego library's tests, and the end-to-end tests against a
# real local control plane (built from Go modules on first use and cached, see
# tests/controlplane/build.sh). Ends with one summary line over all test binaries.
set -uo pipefail
cd "$(dirname "$0")/.."

# Build (or find in the cache) the control plane first, so its progress is visible here and
# not hidden inside a test.
tests/controlplane/build.sh >/dev/null || exit 1
# Helm (for the chart tests), built from Go modules and cached the same way.
CRMRISK_HELM="$(tests/tools/build-helm.sh)" || exit 1
export CRMRISK_HELM

log="$(mktemp)"
trap 'rm -f "$log"' EXIT
cargo test --workspace --color never "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}

# One closing line for all binaries: sum cargo's per-binary "test result:" lines.
awk '/^test result:/ {
       for (i = 1; i <= NF; i++) {
         if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i; if ($(i+1) ~ /^ignored/) s += $i
       }
     }
     END { printf "all tests: %d passed, %d failed, %d skipped\n", p, f, s }' "$log"
exit "$status"
