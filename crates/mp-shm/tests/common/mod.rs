//! Re-exports the shared fork helpers (`mp-testkit`).
#![allow(unused_imports)]

pub(crate) use mp_testkit::*;
