//! `cargo xtask mpi`: builds mp-mpi (which needs the system's MPI, so the
//! workspace's own steps leave it out), lints it, runs its tests in both
//! start modes (a plain run that spawns workers, and `mpirun`), runs the
//! prime-counting example both ways, and removes the shared-memory
//! segments that killed ranks leave in /dev/shm.
//!
//! MPI itself comes from the system: on Debian or Ubuntu,
//! `apt-get update && apt-get install -y openmpi-bin libopenmpi-dev libclang-dev`
//! (`.ci/run` does this when `mpicc` is missing).
//!
//! OpenMPI is kept to this host: loopback TCP and shared memory only, more
//! ranks than cores allowed, and allowed to run as root (CI containers).

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::{cmd, project_root};

/// How Debian and Ubuntu get what mp-mpi builds on.
pub(crate) const INSTALL: &str =
    "apt-get update && apt-get install -y openmpi-bin libopenmpi-dev libclang-dev";

/// World size of the `mpirun` runs: rank 0 and three workers.
const RANKS: &str = "4";

/// The environment of every MPI run: this host only.
pub(crate) const MPI_ENV: &[(&str, &str)] = &[
    ("OMPI_ALLOW_RUN_AS_ROOT", "1"),
    ("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1"),
    ("OMPI_MCA_btl_tcp_if_include", "lo"),
    ("OMPI_MCA_oob_tcp_if_include", "lo"),
    ("OMPI_MCA_rmaps_base_oversubscribe", "1"),
    // A spawned job talks to its parent job over TCP (shared memory is
    // per job): loopback only, as above.
    ("OMPI_MCA_btl", "self,vader,tcp"),
];

/// `mpirun`'s own arguments: shared memory inside the job, a dead rank
/// does not abort the others (the pool reports it).
pub(crate) const MPIRUN_ARGS: &[&str] = &[
    "--oversubscribe",
    "--enable-recovery",
    "--mca",
    "btl",
    "self,vader",
];

/// Whether `mpicc` and `mpirun` are on the PATH.
pub(crate) fn available() -> Result<(), String> {
    for tool in ["mpicc", "mpirun"] {
        if cmd::capture("sh", &["-c", &format!("command -v {tool}")], Path::new("/")).is_none() {
            return Err(format!(
                "{tool} not found: mp-mpi needs the system's MPI; on Debian or Ubuntu: {INSTALL}"
            ));
        }
    }
    Ok(())
}

/// The files in /dev/shm now.
pub(crate) fn shm_files() -> BTreeSet<String> {
    std::fs::read_dir("/dev/shm")
        .map(|d| {
            d.filter_map(Result::ok)
                .filter_map(|e| e.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Removes the segments of OpenMPI's shared-memory transport created since
/// `before` (a killed rank cannot remove its own); returns their names.
pub(crate) fn clean_shm(before: &BTreeSet<String>) -> Vec<String> {
    let mut removed = Vec::new();
    for f in shm_files().difference(before) {
        if (f.starts_with("vader_segment.") || f.starts_with("sm_segment."))
            && std::fs::remove_file(Path::new("/dev/shm").join(f)).is_ok()
        {
            removed.push(f.clone());
        }
    }
    removed
}

fn step(what: &str) {
    println!("\n==> {what}");
}

/// Runs `c` with a time limit, its output passed through.
fn run(what: &str, c: &mut Command, limit: Duration) -> Result<String, String> {
    step(what);
    for (k, v) in MPI_ENV {
        c.env(k, v);
    }
    let o = cmd::run_limited(c, limit, |l| match l {
        cmd::Line::Out(s) => println!("{s}"),
        cmd::Line::Err(s) => eprintln!("{s}"),
    })
    .map_err(|e| format!("{what}: {e}"))?;
    match o.failure() {
        Some(f) => Err(format!("{what}: {f}")),
        None => Ok(o.stdout),
    }
}

fn cargo(root: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(root).args(args);
    c
}

/// The test executable that `cargo test --no-run` built, from its
/// "Executable tests/mpirun.rs (PATH)" line.
fn test_executable(root: &Path) -> Result<String, String> {
    let out = cargo(
        root,
        &[
            "test",
            "-p",
            "mp-mpi",
            "--features",
            "mpi",
            "--locked",
            "--test",
            "mpirun",
            "--no-run",
        ],
    )
    .output()
    .map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&out.stderr);
    text.lines()
        .filter(|l| l.contains("Executable") && l.contains("mpirun"))
        .find_map(|l| {
            let (_, rest) = l.rsplit_once('(')?;
            rest.strip_suffix(')').map(str::to_owned)
        })
        .map(|p| root.join(p).display().to_string())
        .ok_or_else(|| format!("no test executable in cargo's output:\n{text}"))
}

pub(crate) fn run_all(args: &[String]) -> Result<(), String> {
    if let Some(a) = args.first() {
        return Err(format!("mpi takes no arguments (got {a:?})"));
    }
    available()?;
    let root = project_root();
    let before = shm_files();
    let result = steps(&root);
    let removed = clean_shm(&before);
    if !removed.is_empty() {
        println!(
            "removed {} shared-memory segment(s) of killed ranks: {}",
            removed.len(),
            removed.join(" ")
        );
    }
    result?;
    println!("\nmp-mpi passed");
    Ok(())
}

fn steps(root: &Path) -> Result<(), String> {
    let minutes = |m: u64| Duration::from_secs(60 * m);
    run(
        "clippy (mp-mpi, feature mpi)",
        &mut cargo(
            root,
            &[
                "clippy",
                "-p",
                "mp-mpi",
                "--features",
                "mpi",
                "--all-targets",
                "--locked",
                "--",
                "-D",
                "warnings",
            ],
        ),
        minutes(20),
    )?;
    let mut doc = cargo(
        root,
        &[
            "doc",
            "-p",
            "mp-mpi",
            "--features",
            "mpi",
            "--no-deps",
            "--locked",
        ],
    );
    doc.env("RUSTDOCFLAGS", "-D warnings");
    run("rustdoc (mp-mpi, feature mpi)", &mut doc, minutes(20))?;
    run(
        "tests, spawn mode (a plain run: Pool::spawn)",
        &mut cargo(
            root,
            &["test", "-p", "mp-mpi", "--features", "mpi", "--locked"],
        ),
        minutes(20),
    )?;
    let exe = test_executable(root)?;
    let mut c = Command::new("mpirun");
    c.args(["-np", RANKS]).args(MPIRUN_ARGS).arg(&exe);
    run(
        &format!("tests, world mode (mpirun -np {RANKS}: Pool::world)"),
        &mut c,
        minutes(10),
    )?;
    run(
        "build the example (release)",
        &mut cargo(
            root,
            &[
                "build",
                "-p",
                "mp-mpi",
                "--features",
                "mpi",
                "--release",
                "--locked",
                "--example",
                "primes",
            ],
        ),
        minutes(20),
    )?;
    let example = root.join("target/release/examples/primes");
    let example = example.display().to_string();
    let spawned = run(
        "example, spawn mode (./primes)",
        &mut Command::new(&example),
        minutes(5),
    )?;
    let mut c = Command::new("mpirun");
    c.args(["-np", "3"]).args(MPIRUN_ARGS).arg(&example);
    let world = run(
        "example, world mode (mpirun -np 3 ./primes)",
        &mut c,
        minutes(5),
    )?;
    for (mode, out) in [("spawn", &spawned), ("world", &world)] {
        if !out.contains("mp_mpi::Pool") {
            return Err(format!(
                "the example in {mode} mode printed no mp_mpi::Pool line"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_new_mpi_segments_are_removed() {
        let dir = Path::new("/dev/shm");
        if !dir.is_dir() {
            return;
        }
        let before = shm_files();
        let ours = format!("vader_segment.xtask-test.{}", std::process::id());
        let other = format!("xtask-test-keep.{}", std::process::id());
        std::fs::write(dir.join(&ours), b"x").unwrap();
        std::fs::write(dir.join(&other), b"x").unwrap();
        let removed = clean_shm(&before);
        let kept = dir.join(&other).exists();
        let _ = std::fs::remove_file(dir.join(&other));
        assert!(removed.contains(&ours), "{removed:?}");
        assert!(!dir.join(&ours).exists());
        assert!(kept, "a file that is not an MPI segment was removed");
    }
}
