//! Command line: thin argument parsing that calls into the library.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "crmrisk", version, about = "CRM risk management as policy-as-code for Kubernetes")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the operator against the cluster of the current kubeconfig.
    Run,
    /// Scan manifest files offline and print the risk of each workload.
    Scan,
    /// Run the Rego unit tests (`test_*` rules) in a policy directory.
    Test,
    /// Print the CustomResourceDefinitions as YAML.
    Crd,
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let name = match cli.command {
        Command::Run => "run",
        Command::Scan => "scan",
        Command::Test => "test",
        Command::Crd => "crd",
    };
    eprintln!("error: `crmrisk {name}` is not implemented yet");
    ExitCode::from(2)
}
