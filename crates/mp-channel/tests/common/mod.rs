//! Re-exports the shared fork helpers (`mp-testkit`).

#![allow(dead_code, unused_imports, unreachable_pub)]

use std::time::Duration;

pub use mp_testkit::{Child, fork};

/// Generous timeout for children on a shared, noisy machine.
pub const LONG: Duration = Duration::from_secs(120);
