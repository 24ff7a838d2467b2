//! `crmrisk`: the operator (`run`), the offline scanner (`scan`), the Rego test runner (`test`)
//! and the CRD printer (`crd`). All logic lives in the library; this only dispatches.

/// mimalloc instead of glibc's allocator: Rego evaluation and the context builder allocate many
/// small, short-lived values next to long-lived caches, and glibc spends a third of the CPU time
/// consolidating free chunks in that heap (the whole per-workload pipeline went from 1.4 ms to
/// 0.5 ms at 10,000 workloads; see BENCHMARKS.md). `--no-default-features` builds with the system
/// allocator, for heap profilers such as heaptrack.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    crmrisk::cli::main()
}
