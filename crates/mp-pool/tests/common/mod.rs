//! Helpers shared by the integration tests (from `mp-testkit`).
#![allow(unused_imports)]

pub(crate) use mp_testkit::{alive, all_gone};
