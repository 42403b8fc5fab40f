//! Small synchronisation helpers shared by the controllers and the audit trail.

use std::sync::{Mutex, MutexGuard};

/// Locks a mutex; a panic elsewhere while holding it does not make its data unusable here.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
