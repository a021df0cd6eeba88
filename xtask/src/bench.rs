//! `cargo xtask bench [--quick] [--only GROUP]...`: builds the `mp-bench` harness in release
//! mode, runs it and the Python comparison scripts group by group, and prints one markdown
//! table per group with every row's ratio against its baselines. Also writes
//! `<target>/bench/latest.json`, `latest.md` and `latest.svg` (the chart, `svg.rs`), and keeps
//! a copy of the JSON under `<target>/bench/history/` named by time and commit. Progress goes
//! to stderr (`progress.rs`).
//!
//! `cargo xtask bench --compare OLD [NEW]` compares two such runs instead (`compare.rs`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::cmd::{self, Outcome};
use crate::compare;
use crate::progress::{self, Progress};
use crate::report::{self, Row};
use crate::{project_root, svg};

use serde_json::{Value, json};

/// Parsed command line of `bench`.
#[derive(Debug, Default)]
struct Options {
    quick: bool,
    only: Vec<String>,
    /// `--compare OLD [NEW]`: compare two runs instead of running.
    compare: Option<(String, Option<String>)>,
    threshold: Option<f64>,
    fail_above: Option<f64>,
}

fn percent(flag: &str, v: Option<&String>) -> Result<f64, String> {
    let v = v.ok_or_else(|| format!("{flag} needs a percentage"))?;
    v.trim_end_matches('%')
        .parse::<f64>()
        .ok()
        .filter(|x| x.is_finite() && *x >= 0.0)
        .ok_or_else(|| format!("{flag}: {v:?} is not a percentage"))
}

fn parse(args: &[String]) -> Result<Options, String> {
    let mut o = Options::default();
    let mut it = args.iter().peekable();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--quick" => o.quick = true,
            "--compare" => {
                let old = it.next().ok_or("--compare needs OLD.json")?.clone();
                let new = it.next_if(|n| !n.starts_with("--")).cloned();
                o.compare = Some((old, new));
            }
            "--threshold" => o.threshold = Some(percent(a, it.next())?),
            "--fail-above" => o.fail_above = Some(percent(a, it.next())?),
            "--only" => {
                let g = it.next().ok_or("--only needs a group name")?;
                o.only
                    .extend(g.split(',').filter(|s| !s.is_empty()).map(str::to_owned));
            }
            s if s.starts_with("--only=") => {
                o.only.extend(
                    s[7..]
                        .split(',')
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned),
                );
            }
            other => return Err(format!("bench: unknown argument {other:?}")),
        }
    }
    if o.compare.is_none() && (o.threshold.is_some() || o.fail_above.is_some()) {
        return Err("bench: --threshold and --fail-above go with --compare".into());
    }
    if o.compare.is_some() && (o.quick || !o.only.is_empty()) {
        return Err(
            "bench: --compare compares two finished runs; run the benchmark first, then \
             compare"
                .into(),
        );
    }
    Ok(o)
}

/// `<target>/bench`: `CARGO_TARGET_DIR` if set, else `target/` in the workspace.
fn bench_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(|d| root.join(d))
        .unwrap_or_else(|| root.join("target"))
        .join("bench")
}

/// Runs the whole benchmark; the table goes to stdout, progress to stderr.
pub(crate) fn run(args: &[String]) -> Result<(), String> {
    let opts = parse(args)?;
    let root = project_root();
    if let Some((old, new)) = &opts.compare {
        let req = compare::Request {
            old: old.clone(),
            new: new.clone(),
            threshold: opts.threshold.unwrap_or(compare::DEFAULT_THRESHOLD),
            fail_above: opts.fail_above,
        };
        return compare::run(&req, &bench_dir(&root));
    }
    let started = Instant::now();
    let meta_start = Meta::collect(&root, &opts);

    // The mpi group needs the system's MPI: built in where mpicc is found,
    // into a harness of its own, so that the other groups' processes (and
    // the OS limits they are compared with: forking and spawning the
    // harness) do not load OpenMPI's libraries.
    let mpi = crate::mpi::available();
    eprintln!("xtask bench: building mp-bench (release)");
    let exe = build_harness(&root, None)?;
    let harness_groups: Vec<String> = cmd::capture(path_str(&exe)?, &["list"], &root)
        .ok_or("mp-bench list failed")?
        .lines()
        .map(str::to_owned)
        .collect();
    let scripts = python_scripts(&root);
    let mut groups: Vec<String> = harness_groups.clone();
    for (g, _) in &scripts {
        if !groups.contains(g) {
            groups.push(g.clone());
        }
    }
    for g in &opts.only {
        if !groups.contains(g) {
            return Err(format!(
                "bench: unknown group {g:?}; groups: {}",
                groups.join(", ")
            ));
        }
    }
    if !opts.only.is_empty() {
        groups.retain(|g| opts.only.contains(g));
    }

    let python = meta_start.python.is_some();
    let mut notes = Vec::new();
    if let Some(busy) = meta_start.busy() {
        notes.push(busy);
    }
    if !python && groups.iter().any(|g| scripts.iter().any(|(s, _)| s == g)) {
        notes.push("python3 not found: the Python rows were skipped".to_owned());
    }
    if let Err(why) = &mpi
        && groups.iter().any(|g| g == "mpi")
    {
        notes.push(format!("the mpi group has no rows: {why}"));
        groups.retain(|g| g != "mpi");
    }
    let mpi_exe = if groups.iter().any(|g| g == "mpi") {
        eprintln!("xtask bench: building mp-bench with MPI (release, target/bench-mpi)");
        Some(build_harness(&root, Some(&root.join("target/bench-mpi")))?)
    } else {
        None
    };
    let limit = Duration::from_secs(if opts.quick { 90 } else { 300 });
    let flag: &[&str] = if opts.quick { &["--quick"] } else { &[] };
    let out_dir = exe
        .parent()
        .and_then(Path::parent)
        .map_or_else(|| root.join("target"), Path::to_path_buf)
        .join("bench");

    // The steps: the harness, then the Python script, of each group.
    let mut steps: Vec<(String, Command)> = Vec::new();
    for g in &groups {
        // MPI runs stay on this host, as in `cargo xtask mpi`.
        let env: &[(&str, &str)] = if g == "mpi" { crate::mpi::MPI_ENV } else { &[] };
        if harness_groups.contains(g) {
            let harness = match &mpi_exe {
                Some(m) if g == "mpi" => m,
                _ => &exe,
            };
            let mut c = Command::new(harness);
            c.args(flag)
                .arg(g)
                .current_dir(&root)
                .envs(env.iter().copied());
            steps.push((format!("mp-bench {g}"), c));
        }
        if let Some((_, script)) = scripts.iter().find(|(s, _)| s == g).filter(|_| python) {
            let mut c = Command::new("python3");
            c.arg("-u")
                .arg(script)
                .args(flag)
                .env("PYTHONDONTWRITEBYTECODE", "1")
                .envs(env.iter().copied())
                .current_dir(script.parent().unwrap_or(&root));
            steps.push((format!("python/{g}.py"), c));
        }
    }
    let before = std::fs::read_to_string(out_dir.join("latest.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<Value>(&t).ok())
        .map(|j| progress::previous_steps(&j, &meta_start.command))
        .unwrap_or_default();
    let labels: Vec<String> = steps.iter().map(|(l, _)| l.clone()).collect();
    let guess = if opts.quick { 8.0 } else { 30.0 };
    let mut progress = Progress::new(
        progress::estimates(&labels, &before, guess),
        !before.is_empty(),
    );
    let mut rows = Vec::new();
    for (label, mut c) in steps {
        progress.start();
        let result = cmd::run_limited(&mut c, limit, |line| match line {
            cmd::Line::Err(l) => progress.log(&format!("[{label}] {l}")),
            cmd::Line::Out(l) => {
                if let Ok(r) = Row::from_line(l) {
                    let size = r
                        .size
                        .map_or_else(String::new, |b| format!(" {}", report::fmt_size(b)));
                    progress.row(&format!("{} {}{size}", r.name, r.imp));
                }
            }
        });
        progress.finish_step();
        match result {
            Ok(out) => collect(&out, &label, &mut rows, &mut notes),
            Err(e) if label.starts_with("python") => {
                notes.push(format!("{label} skipped: {e}"));
            }
            Err(e) => {
                progress.finish();
                return Err(format!("{label}: {e}"));
            }
        }
    }
    progress.finish();
    for (i, r) in rows.iter().enumerate() {
        if rows[..i].iter().any(|o| o.key == r.key) {
            notes.push(format!("duplicate row key {:?} (from {})", r.key, r.source));
        }
    }

    let ratios = report::ratios(&rows);
    let elapsed = started.elapsed();
    let md = format!(
        "{}{}\n{}",
        meta_start.markdown(elapsed),
        report::tables(&rows, &ratios),
        notes_markdown(&notes)
    );
    print!("{md}");

    let mut meta = meta_start.json(elapsed);
    if let Value::Object(m) = &mut meta {
        m.insert("steps".into(), progress.steps_json());
    }
    let svg = svg::render(
        &format!("{}: {}", meta_start.command, meta_start.commit_text()),
        &[
            &format!(
                "{}; {}, {} cores, load average {} at start; {}; {}",
                meta_start.date,
                meta_start.cpu,
                meta_start.cores,
                meta_start.load,
                meta_start.rustc,
                meta_start.python.as_deref().unwrap_or("no Python"),
            ),
            "Each bar: a row's median cost (time per operation, or inverse rate) divided by its \
             baseline's, both measured in this run.",
        ],
        &svg::panels(&rows, &ratios),
    )?;
    let rows_json: Vec<Value> = rows
        .iter()
        .zip(&ratios)
        .map(|(r, x)| report::row_json(r, x))
        .collect();
    let json = json!({"meta": meta, "notes": notes, "rows": rows_json});
    let history = out_dir.join("history");
    std::fs::create_dir_all(&history).map_err(|e| format!("{}: {e}", history.display()))?;
    let json = serde_json::to_string_pretty(&json).expect("JSON values serialize") + "\n";
    let kept = history.join(meta_start.history_name());
    for (p, text) in [
        (out_dir.join("latest.md"), md.as_str()),
        (out_dir.join("latest.json"), json.as_str()),
        (out_dir.join("latest.svg"), svg.as_str()),
        (kept.clone(), json.as_str()),
    ] {
        std::fs::write(&p, text).map_err(|e| format!("{}: {e}", p.display()))?;
    }
    eprintln!(
        "xtask bench: {} rows in {:.0} s; wrote {}/latest.{{md,json,svg}} and {}",
        rows.len(),
        elapsed.as_secs_f64(),
        out_dir.display(),
        kept.display()
    );
    Ok(())
}

fn path_str(p: &Path) -> Result<&str, String> {
    p.to_str()
        .ok_or_else(|| format!("non-UTF-8 path {}", p.display()))
}

/// Parses the JSON lines of one run into `rows`, noting bad lines and failures.
fn collect(out: &Outcome, label: &str, rows: &mut Vec<Row>, notes: &mut Vec<String>) {
    let mut bad = 0;
    for line in out.stdout.lines().map(str::trim).filter(|l| !l.is_empty()) {
        match Row::from_line(line) {
            Ok(mut r) => {
                r.source = label.to_owned();
                rows.push(r);
            }
            Err(e) => {
                bad += 1;
                if bad == 1 {
                    eprintln!("[{label}] ignored a line that is not a row ({e}): {line}");
                }
            }
        }
    }
    if bad > 0 {
        notes.push(format!("{label}: {bad} stdout line(s) were not rows"));
    }
    if let Some(why) = out.failure() {
        notes.push(format!("{label} {why} (rows it printed before are kept)"));
    }
}

/// `cargo build --release -p mp-benches --bin mp-bench`; returns the
/// executable's path. With `mpi_target`: the `mpi` feature on, built in
/// that target directory (the plain harness stays as it is).
fn build_harness(root: &Path, mpi_target: Option<&Path>) -> Result<PathBuf, String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut features: Vec<std::ffi::OsString> = Vec::new();
    if let Some(dir) = mpi_target {
        features.extend(["--features", "mpi", "--target-dir"].map(Into::into));
        features.push(dir.into());
    }
    let out = Command::new(cargo)
        .args([
            "build",
            "--release",
            "-p",
            "mp-benches",
            "--bin",
            "mp-bench",
        ])
        .args(&features)
        .arg("--message-format=json-render-diagnostics")
        .current_dir(root)
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cargo build: {e}"))?;
    if !out.status.success() {
        return Err(format!("cargo build of mp-bench failed ({})", out.status));
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["reason"] == "compiler-artifact" && v["target"]["name"] == "mp-bench")
        .find_map(|v| v["executable"].as_str().map(PathBuf::from))
        .ok_or_else(|| "cargo build did not report the mp-bench executable".to_owned())
}

/// `benches/python/*.py` except `_*.py`, as (group, path), sorted.
fn python_scripts(root: &Path) -> Vec<(String, PathBuf)> {
    let dir = root.join("benches/python");
    let mut v: Vec<(String, PathBuf)> = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "py"))
        .filter_map(|p| {
            let stem = p.file_stem()?.to_str()?.to_owned();
            (!stem.starts_with('_')).then_some((stem, p))
        })
        .collect();
    v.sort();
    v
}

fn notes_markdown(notes: &[String]) -> String {
    if notes.is_empty() {
        return String::new();
    }
    let mut s = String::from("### notes\n\n");
    for n in notes {
        s.push_str(&format!("- {n}\n"));
    }
    s
}

/// Where and when the figures were measured.
#[derive(Debug)]
struct Meta {
    command: String,
    uname: String,
    cpu: String,
    cores: usize,
    load: String,
    rustc: String,
    python: Option<String>,
    commit: String,
    dirty: Option<bool>,
    date: String,
}

impl Meta {
    fn collect(root: &Path, opts: &Options) -> Meta {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split_once(':'))
            .map_or("unknown", |(_, m)| m.trim())
            .to_owned();
        let cores = cpuinfo
            .lines()
            .filter(|l| l.starts_with("processor"))
            .count();
        let load = std::fs::read_to_string("/proc/loadavg")
            .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
            .unwrap_or_else(|_| "unknown".into());
        let mut command = String::from("cargo xtask bench");
        if opts.quick {
            command.push_str(" --quick");
        }
        if !opts.only.is_empty() {
            command.push_str(&format!(" --only {}", opts.only.join(",")));
        }
        let python = cmd::capture("python3", &["--version"], root);
        let commit = cmd::capture("git", &["rev-parse", "--short=12", "HEAD"], root)
            .unwrap_or_else(|| "unknown".into());
        let dirty = cmd::capture("git", &["status", "--porcelain"], root).map(|s| !s.is_empty());
        Meta {
            command,
            uname: cmd::capture("uname", &["-a"], root).unwrap_or_else(|| "unknown".into()),
            cpu,
            cores: cores.max(std::thread::available_parallelism().map_or(0, |n| n.get())),
            load,
            rustc: cmd::capture("rustc", &["--version"], root).unwrap_or_else(|| "unknown".into()),
            python,
            commit,
            dirty,
            date: utc_now(),
        }
    }

    /// A warning when other work was running (1-minute load average of 1 or more: on a
    /// 2-core machine a pinned benchmark shares a CPU most of the time).
    fn busy(&self) -> Option<String> {
        let load1: f64 = self.load.split_whitespace().next()?.parse().ok()?;
        (load1 >= 1.0).then(|| {
            format!(
                "the machine was busy (load average {load1} at start, {} cores): expect noisy \
                 figures, rerun when idle before trusting a surprise",
                self.cores
            )
        })
    }

    /// The name of this run's copy under `history/`: start time, then commit, so that names
    /// sort by time: `2026-12-02T12-15-00Z_e6c553e0a1b2[-dirty].json`.
    fn history_name(&self) -> String {
        let time: String = self
            .date
            .trim_end_matches(" UTC")
            .chars()
            .map(|c| match c {
                ' ' => 'T',
                ':' => '-',
                c => c,
            })
            .collect();
        let commit: String = self
            .commit
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .collect();
        let dirty = if self.dirty == Some(true) {
            "-dirty"
        } else {
            ""
        };
        format!("{time}Z_{commit}{dirty}.json")
    }

    fn commit_text(&self) -> String {
        match self.dirty {
            Some(true) => format!("{} (dirty tree)", self.commit),
            Some(false) => format!("{} (clean tree)", self.commit),
            None => self.commit.clone(),
        }
    }

    fn markdown(&self, elapsed: Duration) -> String {
        let python = self
            .python
            .as_deref()
            .unwrap_or("not found (Python rows skipped)");
        format!(
            "## IPC latency and throughput: `{cmd}`\n\n\
             | | |\n|---|---|\n\
             | machine | `{uname}` |\n\
             | CPU | {cpu}, {cores} cores |\n\
             | load average at start | {load} |\n\
             | rustc | {rustc} |\n\
             | Python | {python} |\n\
             | commit | {commit} |\n\
             | date | {date} |\n\
             | run time | {secs:.0} s |\n\n\
             p50 / p99: median and 99th percentile of the per-operation samples (rates: the \
             median of the repeats). one-way p50 = round trip p50 / 2. \"vs baseline\" compares \
             the row's p50 with the p50 of each baseline row measured in this run, as cost (time \
             per operation, or inverse rate): \"3.0x slower than raw futex\" = takes 3 times as \
             long. `raw ...` rows are OS limits measured by the `mp-bench` harness, `python ...` \
             rows are Python's multiprocessing (`benches/python/`); see `benches/README.md`.\n",
            cmd = self.command,
            uname = self.uname,
            cpu = self.cpu,
            cores = self.cores,
            load = self.load,
            rustc = self.rustc,
            commit = self.commit_text(),
            date = self.date,
            secs = elapsed.as_secs_f64(),
        )
    }

    fn json(&self, elapsed: Duration) -> Value {
        json!({
            "command": self.command,
            "uname": self.uname,
            "cpu": self.cpu,
            "cores": self.cores,
            "load_average": self.load,
            "rustc": self.rustc,
            "python": self.python,
            "commit": self.commit,
            "dirty": self.dirty,
            "date": self.date,
            "seconds": (elapsed.as_secs_f64() * 10.0).round() / 10.0,
        })
    }
}

/// The current UTC time as `YYYY-MM-DD HH:MM:SS UTC`.
fn utc_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    let t = secs % 86_400;
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        t / 3600,
        t / 60 % 60,
        t % 60
    )
}

/// Days since 1970-01-01 to a (year, month, day) in the proleptic Gregorian calendar (Howard
/// Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
    }

    #[test]
    fn options() {
        let a = |v: &[&str]| parse(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        let o = a(&["--quick", "--only", "ipc,pool", "--only=lock"]).unwrap();
        assert!(o.quick);
        assert_eq!(o.only, ["ipc", "pool", "lock"]);
        assert!(a(&["--bogus"]).is_err());
        assert!(a(&["--only"]).is_err());
        let o = a(&[
            "--compare",
            "old.json",
            "--threshold",
            "2.5",
            "--fail-above",
            "10%",
        ])
        .unwrap();
        assert_eq!(o.compare, Some(("old.json".into(), None)));
        assert_eq!((o.threshold, o.fail_above), (Some(2.5), Some(10.0)));
        let o = a(&["--compare", "old.json", "new.json"]).unwrap();
        assert_eq!(
            o.compare,
            Some(("old.json".into(), Some("new.json".into())))
        );
        assert!(a(&["--compare"]).is_err());
        assert!(a(&["--fail-above", "5"]).is_err());
        assert!(a(&["--compare", "a", "--threshold", "x"]).is_err());
        assert!(a(&["--compare", "a", "--quick"]).is_err());
    }

    #[test]
    fn history_names_sort_by_time_and_name_the_commit() {
        let mut m = Meta::collect(Path::new("/"), &Options::default());
        m.date = "2026-12-02 12:15:07 UTC".into();
        m.commit = "e6c553e0a1b2".into();
        m.dirty = Some(true);
        assert_eq!(
            m.history_name(),
            "2026-12-02T12-15-07Z_e6c553e0a1b2-dirty.json"
        );
        m.dirty = Some(false);
        m.commit = "unknown".into();
        assert_eq!(m.history_name(), "2026-12-02T12-15-07Z_unknown.json");
    }
}
