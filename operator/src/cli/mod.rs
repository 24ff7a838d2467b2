//! Command line: thin argument parsing that calls into the library.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::scan::output::Format;

#[derive(Debug, Parser)]
#[command(name = "crmrisk", version, about = "CRM risk management as policy-as-code for Kubernetes")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the operator against the cluster of the current kubeconfig (or in-cluster config).
    Run(crate::run::RunArgs),
    /// Scan manifest files offline and print the risk of each workload.
    ///
    /// Exit codes: 0 every workload is within tolerance; 1 some workload is above its policy's
    /// tolerance; 2 some input or policy could not be read (everything else is still reported).
    Scan(ScanArgs),
    /// Run the Rego unit tests (`test_*` rules) in a policy directory.
    Test(TestArgs),
    /// Print the CustomResourceDefinitions as YAML (apply with `kubectl apply -f -`).
    Crd,
}

#[derive(Debug, Args)]
pub struct ScanArgs {
    /// Manifest files or directories (YAML or JSON, multi-document, `kind: List`); `-` for stdin.
    #[arg(short = 'f', long = "filename", required = true, num_args = 1..)]
    pub inputs: Vec<PathBuf>,
    /// Files with CRMRiskPolicy documents. Default: one policy with every built-in check.
    #[arg(short = 'p', long = "policy")]
    pub policies: Vec<PathBuf>,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value = "table")]
    pub output: Format,
    /// Treat Velero as installed even when the inputs hold no Velero object.
    #[arg(long)]
    pub assume_velero: bool,
    /// Treat CloudNativePG as installed even when the inputs hold no CNPG object.
    #[arg(long)]
    pub assume_cnpg: bool,
}

#[derive(Debug, Args)]
pub struct TestArgs {
    /// Directory holding `.rego` modules, their `*_test.rego` tests and JSON data.
    #[arg(default_value = "policies")]
    pub dir: PathBuf,
    /// Only run tests whose full name contains this text.
    #[arg(long)]
    pub run: Option<String>,
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run(args) => run(args),
        Command::Scan(args) => scan(args),
        Command::Test(args) => test(args),
        Command::Crd => {
            print!("{}", crate::api::crds_yaml());
            ExitCode::SUCCESS
        }
    }
}

fn run(args: crate::run::RunArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(crate::run::run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn scan(args: ScanArgs) -> ExitCode {
    let report = crate::scan::scan(&crate::scan::ScanOptions {
        inputs: args.inputs,
        policies: args.policies,
        assume_velero: args.assume_velero,
        assume_cnpg: args.assume_cnpg,
        now: None,
    });
    let text = crate::scan::output::render(&report, args.output);
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes());
    let _ = stdout.flush();
    if args.output != Format::Table {
        // Machine formats carry the errors inside; say it on stderr too for people.
        for e in &report.errors {
            eprintln!("error: {}: {}", e.source, e.message);
        }
    }
    ExitCode::from(report.outcome() as u8)
}

fn test(args: TestArgs) -> ExitCode {
    match crate::engine::testing::run_tests(&args.dir, args.run.as_deref()) {
        Ok(report) => {
            let mut stdout = std::io::stdout().lock();
            let _ = crate::engine::testing::print_report(&report, &mut stdout);
            if report.failed() == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) }
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
