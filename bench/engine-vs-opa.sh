#!/usr/bin/env bash
# crmrisk's Rego engine (regorus, embedded) against OPA on the same library and the same inputs.
#
#   bench/engine-vs-opa.sh [N]      # N input documents, default 10000
#
# 1. generates N Rego input documents (the exact input, `params` included) from the benchmark
#    generator (operator/benches/support/gen.rs), with `bench_inputs generate`;
# 2. evaluates them with crmrisk's engine (`bench_inputs eval`: library compiled once, inputs
#    parsed before the clock starts, then one evaluation per input, timed: wall and CPU), on
#    regorus' VM (what crmrisk uses) and, for reference, on regorus' interpreter;
# 3. evaluates them with OPA (bench/opa-runner: the same library from policies/ without the
#    *_test.rego files, metadata.json as data, a query prepared once, inputs converted to AST
#    values before the clock starts, one Eval per input), built once from the Go module proxy
#    and cached like OPA itself;
# 4. checks that all three found the same (workload, rule id) findings, with the same messages,
#    for every input, and fails loudly if not;
# 5. prints evaluations per second for each (the fastest of BENCH_ROUNDS rounds, default 3), and the ratio.
# Every evaluation runs pinned to one core (taskset; see below for why).
# 6. with valgrind installed, counts the instructions each engine executes per evaluation and
#    prints their ratio: a figure the machine's load does not move (see below).
# Also runs `opa test` on the library, so the Rego unit tests are known to pass under OPA too,
# and `bench_inputs assess` for the whole per-workload pipeline (context build + Rego + scoring).
#
# BENCH_PGO=1 measures the profile-guided build of bench/pgo-build.sh instead of the plain
# release build (trained on other inputs than these).
#
# Results go to target/bench/engine-vs-opa/ (inputs, findings, summary.json).
set -euo pipefail
N="${1:-10000}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="$root/target/bench/engine-vs-opa"
mkdir -p "$out"

# --- OPA and the runner, built once and cached outside the clone --------------------------------
opa="$("$root/bench/build-opa.sh")"
cache_root="${CRMRISK_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/crm-risk-operator}"
runner_src="$root/bench/opa-runner"
runner_key="$(cat "$runner_src/go.mod" "$runner_src/go.sum" "$runner_src/main.go" | sha256sum | cut -c1-16)"
runner_dir="$cache_root/opa-runner/${runner_key}_$(go env GOOS)-$(go env GOARCH)"
runner="$runner_dir/opa-runner"
if [ -x "$runner" ]; then
  echo "[bench] using cached $runner" >&2
else
  echo "[bench] building the OPA runner into $runner_dir (a few minutes, once)" >&2
  mkdir -p "$runner_dir"
  (cd "$runner_src" && CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-mod=readonly \
    go build -trimpath -ldflags "-s -w" -o "$runner.tmp" . && mv "$runner.tmp" "$runner")
fi

# --- crmrisk -------------------------------------------------------------------------------------
if [ "${BENCH_PGO:-0}" = 1 ]; then
  echo "[bench] building crmrisk with profile-guided optimization (bench/pgo-build.sh)" >&2
  bench_inputs="$("$root/bench/pgo-build.sh")/bench_inputs"
  build="release, profile-guided (bench/pgo-build.sh)"
else
  build="release"
  echo "[bench] building crmrisk (release)" >&2
  (cd "$root" && cargo build --release --quiet -p crmrisk --example bench_inputs)
  bench_inputs="$root/target/release/examples/bench_inputs"
fi

echo "[bench] opa test on the library" >&2
policies_copy="$out/policies"
rm -rf "$policies_copy"
mkdir -p "$policies_copy"
(cd "$root/policies" && find . \( -name '*.rego' -o -name metadata.json \) -exec cp --parents {} "$policies_copy/" \;)
if ! "$opa" test "$policies_copy" >"$out/opa-test.txt" 2>&1; then
  cat "$out/opa-test.txt" >&2
  echo "[bench] FAILED: the Rego unit tests do not all pass under OPA (see above)" >&2
  exit 1
fi
echo "[bench] $(tail -n 1 "$out/opa-test.txt") (opa test)" >&2
# The benchmark library: the same files without the tests.
find "$policies_copy" -name '*_test.rego' -delete

echo "[bench] generating $N inputs" >&2
"$bench_inputs" generate --count "$N" --out "$out/inputs.jsonl"

# Each engine evaluates pinned to one core (the targets are stated per core): OPA's garbage
# collector otherwise runs on the second core beside the evaluation, which its CPU time counts
# but its wall time hides. BENCH_CPU picks the core; without taskset nothing is pinned.
pin=()
if command -v taskset >/dev/null 2>&1; then
  pin=(taskset -c "${BENCH_CPU:-0}")
else
  echo "[bench] taskset not found: engines not pinned, compare CPU figures rather than wall" >&2
fi

# crmrisk and OPA take turns, BENCH_ROUNDS times (default 3), and each keeps its fastest round
# (least CPU): on a shared machine other load only ever adds time, and taking turns exposes
# both engines to the same spells of it.
rounds="${BENCH_ROUNDS:-3}"
fastest() { jq -s -c 'min_by(.cpu_seconds)'; }
ours_all=""
theirs_all=""
for round in $(seq 1 "$rounds"); do
  echo "[bench] round $round/$rounds: crmrisk (VM), then OPA" >&2
  ours_all+="$("${pin[@]}" "$bench_inputs" eval --inputs "$out/inputs.jsonl" --out "$out/findings-crmrisk.jsonl")"$'\n'
  theirs_all+="$("${pin[@]}" "$runner" -policies "$policies_copy" -inputs "$out/inputs.jsonl" -out "$out/findings-opa.jsonl")"$'\n'
done
ours="$(printf '%s' "$ours_all" | fastest)"
theirs="$(printf '%s' "$theirs_all" | fastest)"
# The ratio of each round's pair (OPA CPU / crmrisk CPU, run back to back) and their median: a
# second view beside the ratio of the fastest rounds, less sensitive to a single lucky run.
round_ratios="$(jq -n -c --argjson o "$(printf '%s' "$ours_all" | jq -s -c '.')" \
  --argjson t "$(printf '%s' "$theirs_all" | jq -s -c '.')" \
  '[range(0; $o | length) | ($t[.].cpu_seconds / $o[.].cpu_seconds * 100 | round) / 100] as $r
   | ($r | sort) as $s
   | {ratios: $r, median: (if ($s | length) % 2 == 1 then $s[($s | length - 1) / 2]
       else (($s[($s | length) / 2 - 1] + $s[($s | length) / 2]) / 2 * 100 | round) / 100 end)}')"
echo "[bench] crmrisk: evaluating (interpreter, once, for reference)" >&2
interp="$("${pin[@]}" "$bench_inputs" eval --backend interpreter --inputs "$out/inputs.jsonl" --out "$out/findings-crmrisk-interpreter.jsonl")"

echo "[bench] comparing findings" >&2
if ! "$bench_inputs" compare "$out/findings-crmrisk.jsonl" "$out/findings-opa.jsonl"; then
  echo "[bench] FAILED: crmrisk and OPA disagree on the findings above; the engines differ on some rule or builtin" >&2
  exit 1
fi
if ! "$bench_inputs" compare "$out/findings-crmrisk.jsonl" "$out/findings-crmrisk-interpreter.jsonl"; then
  echo "[bench] FAILED: regorus' VM and interpreter disagree on the findings above" >&2
  exit 1
fi

# Instructions per evaluation, counted by valgrind (cachegrind without its cache simulation):
# unlike time, the count does not depend on what else the machine runs, so this ratio holds still
# between runs. Each engine runs twice on the first BENCH_IR_INPUTS inputs (default 1000), once
# with no warm-up and once with a warm-up pass over all of them; the difference of the two counts
# is one evaluation of each input (loading, parsing and compiling cancel out). Instructions are
# not time (the two engines do not retire them at the same rate), so this is a second view
# beside the CPU-time ratio above, not a replacement. BENCH_INSTRUCTIONS=0 skips it.
instructions='null'
if [ "${BENCH_INSTRUCTIONS:-1}" != 0 ] && command -v valgrind >/dev/null 2>&1; then
  ir_n="${BENCH_IR_INPUTS:-1000}"
  head -n "$ir_n" "$out/inputs.jsonl" >"$out/inputs-ir.jsonl"
  ir_n="$(wc -l <"$out/inputs-ir.jsonl")"
  echo "[bench] counting instructions with valgrind on $ir_n inputs (a few minutes)" >&2
  count_ir() { # label, command...: prints the total instructions the command executed
    local label="$1"; shift
    valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file=/dev/null "$@" \
      >"$out/ir-$label.out" 2>"$out/ir-$label.err" || { cat "$out/ir-$label.err" >&2; return 1; }
    sed -n 's/.*I *refs: *//p' "$out/ir-$label.err" | tr -d ,
  }
  ours0="$(count_ir crmrisk-0 "$bench_inputs" eval --inputs "$out/inputs-ir.jsonl" --out "$out/ir-findings.jsonl" --warmup 0)"
  ours1="$(count_ir crmrisk-1 "$bench_inputs" eval --inputs "$out/inputs-ir.jsonl" --out "$out/ir-findings.jsonl" --warmup "$ir_n")"
  theirs0="$(GOMAXPROCS=1 count_ir opa-0 "$runner" -policies "$policies_copy" -inputs "$out/inputs-ir.jsonl" -out "$out/ir-findings.jsonl" -warmup 0)"
  theirs1="$(GOMAXPROCS=1 count_ir opa-1 "$runner" -policies "$policies_copy" -inputs "$out/inputs-ir.jsonl" -out "$out/ir-findings.jsonl" -warmup "$ir_n")"
  instructions="$(jq -n -c --argjson n "$ir_n" --argjson o0 "$ours0" --argjson o1 "$ours1" --argjson t0 "$theirs0" --argjson t1 "$theirs1" \
    '{inputs: $n, crmrisk_per_eval: (($o1 - $o0) / $n | round), opa_per_eval: (($t1 - $t0) / $n | round)}
     | .ratio = ((.opa_per_eval / .crmrisk_per_eval * 100 | round) / 100)')"
elif [ "${BENCH_INSTRUCTIONS:-1}" != 0 ]; then
  echo "[bench] valgrind not found: no instruction counts (apt-get install valgrind)" >&2
fi

echo "[bench] crmrisk: whole pipeline (context build + Rego + scoring)" >&2
pipeline="$("${pin[@]}" "$bench_inputs" assess --count "$N")"

printf '%s\n%s\n%s\n%s\n%s\n' "$ours" "$theirs" "$pipeline" "$interp" "$instructions" | jq -s '.' >"$out/summary.json"
jq -r --argjson ir "$instructions" --argjson rr "$round_ratios" --arg cores "$(nproc)" --arg rounds "$rounds" --arg build "$build" --arg pinned "$([ ${#pin[@]} -gt 0 ] && echo "to core ${BENCH_CPU:-0}" || echo no)" '
  def f(x): (x * 100 | round) / 100;
  .[0] as $c | .[1] as $o | .[2] as $p | .[3] as $i |
  "inputs: \($c.count), findings: \($c.findings) (identical in all three), cores: \($cores), engines pinned: \($pinned), fastest of \($rounds) rounds, crmrisk build: \($build)",
  "",
  "Rego evaluation only (library compiled once, inputs pre-parsed):",
  "  crmrisk (regorus VM):          \(f($c.evals_per_second)) evals/s wall, \(f($c.cpu_seconds)) s CPU (\(f($c.evals_per_cpu_second)) evals per CPU second, \(f($c.cpu_seconds / $c.count * 1000000)) us each)",
  "  crmrisk (regorus interpreter): \(f($i.evals_per_second)) evals/s wall, \(f($i.cpu_seconds)) s CPU (\(f($i.evals_per_cpu_second)) evals per CPU second)",
  "  OPA:                           \(f($o.evals_per_second)) evals/s wall, \(f($o.cpu_seconds)) s CPU (\(f($o.evals_per_cpu_second)) evals per CPU second, \(f($o.cpu_seconds / $o.count * 1000000)) us each)",
  "  crmrisk VM / OPA:              \(f($c.evals_per_second / $o.evals_per_second))x (wall), \(f($c.evals_per_cpu_second / $o.evals_per_cpu_second))x (CPU)",
  "  per round (OPA / crmrisk, back to back): \($rr.ratios | map(tostring) | join(", ")); median \($rr.median)x",
  (if $ir == null then "  instructions per evaluation: not counted (no valgrind)" else
   "  instructions per evaluation (valgrind, \($ir.inputs) inputs): crmrisk \($ir.crmrisk_per_eval), OPA \($ir.opa_per_eval); OPA / crmrisk \($ir.ratio)x" end),
  "  target: \($c.count) workloads in under \(f($c.count / 20000)) s of CPU (0.5 s per 10,000): \(if $c.cpu_seconds < $c.count / 20000 then "met" else "NOT met" end)",
  "",
  "crmrisk whole pipeline (context build + Rego + scoring):",
  "  \(f($p.evals_per_second)) workloads/s wall, \(f($p.cpu_seconds)) s CPU for \($p.count) workloads"
' "$out/summary.json"
echo "[bench] details in $out/summary.json" >&2
