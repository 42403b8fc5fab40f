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
    // On a worker, not on the thread that blocks on the runtime: the controllers' streams and
    // the reconciles they wake then share the workers, instead of every hand-over between them
    // crossing threads (a futex wake and a context switch each).
    let command = tokio::spawn(sovra::cli::execute(cli));
    Ok(command.await??)
}
