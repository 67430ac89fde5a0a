//! Locking shared by the stages.

use std::sync::{Mutex, MutexGuard};

/// The guard even when another thread panicked holding it: a panic in one
/// stream's handling must not stop publishing for the others.
pub fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
