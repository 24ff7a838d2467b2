#!/usr/bin/env bash
# A profile-guided (PGO) release build of `crmrisk` and of the benchmark binary `bench_inputs`.
#
#   bench/pgo-build.sh            # prints the directory holding crmrisk and bench_inputs
#   BENCH_PGO=1 bench/engine-vs-opa.sh 10000   # the OPA comparison on the PGO build
#
# Most of crmrisk's CPU goes to regorus' VM dispatch loop, whose branches the compiler cannot
# lay out well without knowing which instructions are common; a profile of real evaluations
# tells it (BENCHMARKS.md has the measured effect). Three steps:
# 1. an instrumented build (`-Cprofile-generate`) into target/pgo/instrumented;
# 2. training runs of that build on work that is NOT the benchmark's: a generated cluster from
#    another seed (the whole pipeline, `bench_inputs assess`, and the Rego evaluation alone,
#    `bench_inputs eval`), `crmrisk scan` on examples/, and `crmrisk test policies/`;
# 3. `llvm-profdata merge`, then the optimized build (`-Cprofile-use`) into target/pgo/optimized.
#
# The profile only changes code layout and inlining, never behaviour. The operator's own code
# paths (watches, status writes) are not trained: they are I/O-bound, and PGO compiles code it
# never saw run for size, not for speed.
#
# Needs llvm-profdata of the same LLVM major version as rustc (`rustc -vV`): the rustup component
# `llvm-tools`, or a distribution package (Debian: `apt-get install llvm-<major>`). The script
# tries both when it runs as root, and otherwise says what to install.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
pgo="$root/target/pgo"
log() { echo "[pgo] $*" >&2; }

llvm_major="$(rustc -vV | sed -n 's/^LLVM version: \([0-9]*\).*/\1/p')"
host="$(rustc -vV | sed -n 's/^host: //p')"
[ -n "$llvm_major" ] || { log "cannot read rustc's LLVM version from 'rustc -vV'"; exit 1; }

profdata_major() { "$1" --version 2>/dev/null | sed -n 's/.*LLVM version \([0-9]*\).*/\1/p' | head -n 1; }
find_profdata() {
  local candidate
  for candidate in "$(rustc --print sysroot)/lib/rustlib/$host/bin/llvm-profdata" \
    "$(command -v "llvm-profdata-$llvm_major" || true)" "$(command -v llvm-profdata || true)"; do
    if [ -n "$candidate" ] && [ -x "$candidate" ] && [ "$(profdata_major "$candidate")" = "$llvm_major" ]; then
      echo "$candidate"
      return 0
    fi
  done
  return 1
}

if ! profdata="$(find_profdata)"; then
  log "no llvm-profdata for LLVM $llvm_major; trying 'rustup component add llvm-tools'"
  rustup component add llvm-tools >/dev/null 2>&1 || true
  if ! profdata="$(find_profdata)" && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    log "trying 'apt-get install llvm-$llvm_major'"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "llvm-$llvm_major" >/dev/null 2>&1 || true
  fi
  profdata="$(find_profdata)" || {
    log "llvm-profdata of LLVM $llvm_major is required: 'rustup component add llvm-tools' or your distribution's llvm-$llvm_major package"
    exit 1
  }
fi
log "using $profdata (LLVM $llvm_major)"

# The profile flags are added with `--config`, so they add up with .cargo/config.toml's (a
# RUSTFLAGS environment variable would replace those, and the build would not be the one shipped).
[ -z "${RUSTFLAGS:-}" ] || { log "unset RUSTFLAGS: it would replace the flags in .cargo/config.toml"; exit 1; }
build() { # build TARGET_DIR RUSTFLAG...
  local dir="$1" flags=""
  shift
  for flag in "$@"; do flags="$flags\"$flag\","; done
  (cd "$root" && CARGO_TARGET_DIR="$dir" \
    cargo build --config "build.rustflags=[${flags%,}]" --release --locked --quiet \
      -p crmrisk --bin crmrisk --example bench_inputs)
}

raw="$pgo/profraw"
rm -rf "$raw"
mkdir -p "$raw"
log "1/3 instrumented build (several minutes)"
build "$pgo/instrumented" "-Cprofile-generate=$raw"

log "2/3 training"
ins="$pgo/instrumented/release"
# Build scripts and proc macros of step 1 also wrote profiles; only the training's are wanted.
rm -rf "$raw"
mkdir -p "$raw"
seed=0x7EA1_2026_0002
"$ins/examples/bench_inputs" assess --count 3000 --warmup 0 --seed "$seed" >/dev/null
"$ins/examples/bench_inputs" generate --count 3000 --seed "$seed" --out "$pgo/training-inputs.jsonl" 2>/dev/null
"$ins/examples/bench_inputs" eval --inputs "$pgo/training-inputs.jsonl" --out "$pgo/training-findings.jsonl" --warmup 0 >/dev/null
for variant in risky hardened; do
  for format in table json sarif; do
    # Exit 1 means "some workload above tolerance", expected for examples/risky.
    "$ins/crmrisk" scan -f "$root/examples/$variant" -o "$format" >/dev/null || [ $? -eq 1 ]
  done
done
"$ins/crmrisk" test "$root/policies" >/dev/null

log "3/3 optimized build (several minutes)"
"$profdata" merge -o "$pgo/merged.profdata" "$raw"
build "$pgo/optimized" "-Cprofile-use=$pgo/merged.profdata" "-Cllvm-args=-pgo-warn-missing-function=false"
out="$pgo/optimized/release"
mkdir -p "$pgo/bin"
cp "$out/crmrisk" "$out/examples/bench_inputs" "$pgo/bin/"
log "done: $pgo/bin/crmrisk and $pgo/bin/bench_inputs"
echo "$pgo/bin"
