//! Project tasks, run as `cargo xtask TASK` (the cargo-xtask convention: `.cargo/config.toml`
//! aliases `xtask` to `run --release --package xtask --`).
//!
//! ```text
//! cargo xtask bench [--quick] [--only GROUP]   IPC latency/throughput table vs Python and the OS
//! cargo xtask bench --compare OLD [NEW]        how each row moved relative to its baselines
//! cargo xtask help                             this text
//! ```
//!
//! One subcommand per task, matched in `main`; few dependencies (plotters' SVG backend for
//! the bench chart, indicatif for its progress line). Tidy checks on the
//! repository are `#[test]`s in this crate (`cargo test -p xtask`).

mod bench;
mod cmd;
mod compare;
mod progress;
mod report;
mod svg;
#[cfg(test)]
mod tidy;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

const HELP: &str = "\
cargo xtask TASK

Tasks:
  bench [--quick] [--only GROUP[,GROUP]]
        Build the mp-bench harness (release), run it and benches/python/*.py, print a
        markdown table of IPC latency and throughput per group (ipc, process, pool, lock,
        manager) next to Python's multiprocessing and the OS limits measured in the same
        run, and write target/bench/latest.{md,json,svg} (the SVG: one panel per group,
        each row's ratio to its OS limit and to Python as bars on a log scale; a copy of the
        JSON is kept in target/bench/history/, named by time and commit). --quick: under a minute, fewer
        iterations. --only: just these groups.
  bench --compare OLD [NEW] [--threshold PCT] [--fail-above PCT]
        Compare two runs (NEW defaults to target/bench/latest.json; OLD may also be part
        of a name under target/bench/history/, e.g. a commit): every row's change in its
        ratio to each baseline of the same run (not in absolute time), marked beyond
        --threshold (default 5%). --fail-above: exit non-zero when a ratio grew by more.
  help  This text.
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (task, rest) = match args.split_first() {
        Some((t, rest)) => (t.as_str(), rest),
        None => ("help", &[][..]),
    };
    let result = match task {
        "bench" => bench::run(rest),
        "help" | "--help" | "-h" => {
            print!("{HELP}");
            Ok(())
        }
        other => Err(format!("unknown task {other:?}\n\n{HELP}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root (the parent of this crate's directory).
pub(crate) fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the workspace root")
        .to_path_buf()
}
