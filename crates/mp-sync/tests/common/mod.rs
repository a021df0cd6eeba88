//! Re-exports the shared fork helpers (`mp-testkit`).
#![allow(unused_imports)]

pub(crate) use mp_testkit::*;

/// Whether process `pid` sleeps in the kernel (state `S` in
/// `/proc/PID/stat`), e.g. on a futex.
#[allow(dead_code)] // not every test file uses it
pub(crate) fn asleep(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            let after = s.rsplit_once(')')?.1;
            after.split_whitespace().next().map(|st| st == "S")
        })
        .unwrap_or(false)
}
