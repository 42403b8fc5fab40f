//! The `sovra` binary: parses the command line and maps errors to exit codes.

use clap::Parser;
use std::process::ExitCode;

/// Returns freed pages to the OS, where glibc's malloc keeps the start-up's and a relist's
/// peaks resident (docs/performance.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    let cli = sovra::cli::Cli::parse();
    Ok(sovra::cli::execute(cli).await?)
}
