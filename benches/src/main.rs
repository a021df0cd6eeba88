//! `mp-bench`: the cross-process benchmark harness behind `cargo xtask bench`.
//!
//! ```text
//! mp-bench [--quick] GROUP...   run groups, print one JSON row per line on stdout
//! mp-bench [--quick] all        every group, in the order of `mp-bench list`
//! mp-bench list                 the group names, one per line
//! ```
//!
//! Progress and errors go to stderr; the exit status is 1 if any row failed. Each group is a
//! module (`ipc`, `process`, `pool`, `lock`, `manager`, `value`, `shm`, `mpi`) with a
//! `run(&Config)` function; the shared toolkit is in `kit`. `benches/README.md` explains the row
//! schema and how to add a row with its baseline.

mod ipc;
mod kit;
mod lock;
mod manager;
mod mpi;
mod pool;
mod process;
mod shm;
mod value;

use std::io;
use std::process::ExitCode;

use kit::Config;

/// A group's runner: measures and emits its rows, returns the rows that failed.
type Group = fn(&Config) -> Vec<(&'static str, io::Error)>;

/// Every group, in running order. `pool` starts rayon's threads, so it runs after the groups
/// that fork.
const GROUPS: &[(&str, Group)] = &[
    ("ipc", ipc::run),
    ("process", process::run),
    ("lock", lock::run),
    ("manager", manager::run),
    ("value", value::run),
    ("shm", shm::run),
    ("pool", pool::run),
    ("mpi", mpi::run),
];

fn main() -> ExitCode {
    #[cfg(feature = "mpi")]
    mp_mpi::init(); // a worker spawned by the mpi group serves there
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some(process::EXIT_NOW) {
        return ExitCode::SUCCESS;
    }
    let quick = args.iter().any(|a| a == "--quick");
    let names: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .filter(|a| *a != "--quick")
        .collect();
    if names.is_empty() || names.contains(&"--help") || names.contains(&"help") {
        eprintln!("usage: mp-bench [--quick] GROUP... | all | list");
        return if names.is_empty() {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        };
    }
    if names == ["list"] {
        for (name, _) in GROUPS {
            println!("{name}");
        }
        return ExitCode::SUCCESS;
    }
    let selected: Vec<&(&str, Group)> = if names == ["all"] {
        GROUPS.iter().collect()
    } else {
        let mut v = Vec::new();
        for n in &names {
            match GROUPS.iter().find(|(g, _)| g == n) {
                Some(g) => v.push(g),
                None => {
                    eprintln!("mp-bench: unknown group {n:?} (try `mp-bench list`)");
                    return ExitCode::FAILURE;
                }
            }
        }
        v
    };
    let cfg = Config::new(quick);
    let mut ok = true;
    for (name, run) in selected {
        eprintln!("mp-bench: {name}{}", if quick { " (quick)" } else { "" });
        for (row, e) in run(&cfg) {
            eprintln!("mp-bench: {name}: {row} failed: {e}");
            ok = false;
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
