#!/usr/bin/env bash
# Scale benchmark of the operator on the local test control plane. Prints JSON figures.
#   bench/cluster-scale.sh [--workloads 5000] [--changes 100] [--quiet-seconds 30]
set -euo pipefail
cd "$(dirname "$0")/.."
tests/controlplane/build.sh >/dev/null
cargo build -q --release -p crmrisk --bin crmrisk
CRMRISK_BIN="$PWD/target/release/crmrisk" cargo run -q --release -p crmrisk-testbed --example cluster_scale -- "$@"
