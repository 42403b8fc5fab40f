//! The `sovra` binary: parses the command line and maps errors to exit codes.

use clap::Parser;
use std::process::ExitCode;

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    let cli = sovra::cli::Cli::parse();
    Ok(sovra::cli::execute(cli).await?)
}
