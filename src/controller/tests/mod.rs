//! Unit tests of the reconcilers, without a server: each reconcile talks to a fake API server
//! that expects an exact script of requests (`fixtures`), over caches fed by hand. The world
//! index is tested by feeding it watch events.

mod cluster_reconcile;
mod fixtures;
pub(super) mod objects;
mod requests;
mod workload_reconcile;
mod world_index;
