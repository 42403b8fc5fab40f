//! Sovra: places workloads only onto EU clusters and sovereign node pools that satisfy their
//! sensitivity class, refuses when nothing qualifies, and records every decision.
//!
//! Layout: `crd` (resource types), `policy` (pure placement engine, no IO), `controller`
//! (kube-rs reconcilers, the IO edge), `audit` (tamper-evident trail), `cli` (the binary).

pub mod audit;
pub mod cli;
pub mod controller;
pub mod crd;
mod error;
pub mod interner;
pub mod policy;
mod sync;

pub use error::{Error, Result};
