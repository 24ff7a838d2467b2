//! `crmrisk`: the operator (`run`), the offline scanner (`scan`), the Rego test runner (`test`)
//! and the CRD printer (`crd`). All logic lives in the library; this only dispatches.

fn main() -> std::process::ExitCode {
    crmrisk::cli::main()
}
