//! The operator: kube-rs controllers, the IO edge around the pure policy.

use crate::cli::RunArgs;

pub async fn run(_args: RunArgs) -> Result<(), crate::Error> {
    Ok(())
}
