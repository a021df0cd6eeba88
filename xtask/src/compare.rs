//! `cargo xtask bench --compare OLD.json [NEW.json]`: how every row moved between two runs,
//! measured in ratio to its baselines (the `vs` entries of `latest.json`), never in absolute
//! time: both runs' baselines were measured on the same machine as the row, so the ratio
//! cancels most of what a noisy machine does to absolute figures.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::report::{self, Row};
use serde::Deserialize as _;
use serde_json::Value;

/// Default `--threshold`: changes beyond this many percent are marked.
pub(crate) const DEFAULT_THRESHOLD: f64 = 5.0;

/// What `--compare` was asked to do.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Request {
    pub(crate) old: String,
    /// `None`: the latest run (`<target>/bench/latest.json`).
    pub(crate) new: Option<String>,
    /// Mark changes beyond this many percent (either way).
    pub(crate) threshold: f64,
    /// Fail when a ratio grew by more than this many percent.
    pub(crate) fail_above: Option<f64>,
}

/// One row compared with one of its baselines, in the old and in the new run.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Change {
    pub(crate) row: Row,
    /// The baseline row's key.
    pub(crate) baseline: String,
    /// How to name the baseline next to the row ("raw futex", "python Pipe 1 KiB").
    pub(crate) label: String,
    /// Cost ratio (row / baseline, as in `latest.json`) in the old run; `None` if the row or
    /// the baseline was not measured there.
    pub(crate) old: Option<f64>,
    /// The same in the new run.
    pub(crate) new: Option<f64>,
}

impl Change {
    /// Relative change of the cost ratio in percent: +10 = the row now costs 10 % more
    /// relative to its baseline (slower), -10 = 10 % less (faster).
    pub(crate) fn percent(&self) -> Option<f64> {
        match (self.old, self.new) {
            (Some(o), Some(n)) if o > 0.0 && n.is_finite() => Some((n / o - 1.0) * 100.0),
            _ => None,
        }
    }
}

/// A row of a finished run with its ratios: `(baseline key, cost ratio)`.
pub(crate) type RunRow = (Row, Vec<(String, Option<f64>)>);

/// A run as read back from its JSON file.
#[derive(Debug)]
pub(crate) struct Run {
    pub(crate) path: PathBuf,
    pub(crate) meta: Value,
    pub(crate) rows: Vec<RunRow>,
}

impl Run {
    /// Reads a `latest.json` (or a copy of one under `history/`).
    pub(crate) fn load(path: &Path) -> Result<Run, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Run::parse(&text, path)
    }

    pub(crate) fn parse(text: &str, path: &Path) -> Result<Run, String> {
        let bad = |e: String| format!("{}: {e}", path.display());
        let v: Value = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
        let rows = v
            .get("rows")
            .and_then(Value::as_array)
            .ok_or_else(|| bad("no \"rows\" array: not a cargo xtask bench file".into()))?
            .iter()
            .map(|r| {
                let mut row = Row::deserialize(r).map_err(|e| e.to_string())?;
                row.fill_key();
                let vs = r
                    .get("vs")
                    .and_then(Value::as_array)
                    .map(Vec::as_slice)
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|x| {
                        let b = x.get("baseline")?.as_str()?.to_owned();
                        Some((b, x.get("cost_ratio").and_then(Value::as_f64)))
                    })
                    .collect();
                Ok((row, vs))
            })
            .collect::<Result<Vec<_>, String>>()
            .map_err(bad)?;
        Ok(Run {
            path: path.to_path_buf(),
            meta: v.get("meta").cloned().unwrap_or(Value::Null),
            rows,
        })
    }

    fn row(&self, key: &str) -> Option<&RunRow> {
        self.rows.iter().find(|(r, _)| r.key == key)
    }

    /// `commit (date)` from the header, for the report.
    fn describe(&self) -> String {
        let m = |k: &str| self.meta.get(k).and_then(Value::as_str).unwrap_or("?");
        let dirty = if self.meta.get("dirty") == Some(&Value::Bool(true)) {
            ", dirty tree"
        } else {
            ""
        };
        format!(
            "`{}`: commit {}{dirty}, {}, load average {}, `{}`",
            self.path.display(),
            m("commit"),
            m("date"),
            m("load_average"),
            m("command"),
        )
    }
}

/// Every (row, baseline) pair of the new run, and those of the old run that the new one lacks,
/// in the report's order.
pub(crate) fn changes(old: &Run, new: &Run) -> Vec<Change> {
    let new_rows: Vec<Row> = new.rows.iter().map(|(r, _)| r.clone()).collect();
    let mut out = Vec::new();
    for (_, idx) in report::arrange(&new_rows) {
        for i in idx {
            let (row, vs) = &new.rows[i];
            let old_vs = old.row(&row.key).map(|(_, v)| v.as_slice()).unwrap_or(&[]);
            for (b, ratio) in vs {
                let label = new
                    .row(b)
                    .or_else(|| old.row(b))
                    .map_or_else(|| b.clone(), |(base, _)| report::label(row, base));
                out.push(Change {
                    row: row.clone(),
                    baseline: b.clone(),
                    label,
                    old: old_vs.iter().find(|(k, _)| k == b).and_then(|(_, x)| *x),
                    new: *ratio,
                });
            }
        }
    }
    for (row, vs) in &old.rows {
        if new.row(&row.key).is_some() {
            continue;
        }
        for (b, ratio) in vs {
            let label = old
                .row(b)
                .map_or_else(|| b.clone(), |(base, _)| report::label(row, base));
            out.push(Change {
                row: row.clone(),
                baseline: b.clone(),
                label,
                old: *ratio,
                new: None,
            });
        }
    }
    out
}

/// A ratio as the report writes it: "3.1x", "0.52x".
fn fmt_ratio(x: Option<f64>) -> String {
    x.map_or_else(|| "—".to_owned(), |x| format!("{}x", report::sig(x, 3)))
}

/// The mark of one change: beyond `threshold` percent either way, or past `fail_above` (which
/// only the project's rows can fail: an OS limit or Python moving against another baseline is
/// the machine's noise, and shown only to tell how noisy the runs were).
pub(crate) fn mark(c: &Change, threshold: f64, fail_above: Option<f64>) -> &'static str {
    match c.percent() {
        Some(p) if c.row.is_project() && fail_above.is_some_and(|f| p > f) => "**FAIL** slower",
        Some(p) if p > threshold => "**slower**",
        Some(p) if p < -threshold => "faster",
        Some(_) => "",
        None => match (c.old, c.new) {
            (None, None) => "baseline not measured",
            (Some(_), None) => "not in new run",
            _ => "not in old run",
        },
    }
}

/// The markdown report: one table per group, then a summary.
pub(crate) fn render(old: &Run, new: &Run, changes: &[Change], req: &Request) -> String {
    let mut md = String::from("## Benchmark comparison\n\n");
    let _ = writeln!(md, "- old: {}", old.describe());
    let _ = writeln!(md, "- new: {}", new.describe());
    let _ = writeln!(
        md,
        "\nEach row's cost ratio to its baseline (row p50 / baseline p50, both measured in the \
         same run) in the old and the new run; \"change\" is how that ratio moved: +10% = the \
         row got 10% slower relative to its baseline. Marked beyond ±{}%{}. Rows without \
         baselines are not compared: their absolute times move with the machine. OS-limit and \
         Python rows compared with another baseline show how noisy the two runs were; only \
         the project's rows (`mp ...`) count in the summary and for --fail-above.",
        req.threshold,
        req.fail_above
            .map(|f| format!("; FAIL above +{}%", f))
            .unwrap_or_default()
    );
    let mut group = "";
    for c in changes {
        if c.row.group != group {
            group = &c.row.group;
            let _ = writeln!(md, "\n### {group}\n");
            md.push_str("| what | impl | size | vs | old | new | change | |\n");
            md.push_str("|---|---|---|---|--:|--:|--:|---|\n");
        }
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            c.row.name,
            c.row.imp,
            c.row.size.map(report::fmt_size).unwrap_or_default(),
            c.label,
            fmt_ratio(c.old),
            fmt_ratio(c.new),
            c.percent()
                .map_or_else(|| "—".to_owned(), |p| format!("{p:+.1}%")),
            mark(c, req.threshold, req.fail_above),
        );
    }
    let compared: Vec<(f64, &Change)> = changes
        .iter()
        .filter(|c| c.row.is_project())
        .filter_map(|c| c.percent().map(|p| (p, c)))
        .collect();
    let slower = compared.iter().filter(|(p, _)| *p > req.threshold).count();
    let faster = compared.iter().filter(|(p, _)| *p < -req.threshold).count();
    let _ = write!(
        md,
        "\nThe project's rows: {} comparisons, {slower} slower and {faster} faster by more than \
         {}%",
        compared.len(),
        req.threshold
    );
    if let Some((p, c)) = compared.iter().max_by(|a, b| a.0.total_cmp(&b.0)) {
        let _ = write!(
            md,
            "; largest increase {p:+.1}% ({} {} vs {})",
            c.row.name, c.row.imp, c.label
        );
    }
    md.push_str(".\n");
    md
}

/// The comparisons of the project's rows that break `--fail-above`.
pub(crate) fn failures(changes: &[Change], fail_above: Option<f64>) -> Vec<&Change> {
    let Some(limit) = fail_above else {
        return Vec::new();
    };
    changes
        .iter()
        .filter(|c| c.row.is_project() && c.percent().is_some_and(|p| p > limit))
        .collect()
}

/// Resolves `OLD`: a file, or else a name part (a commit, a date) of a run kept under
/// `history/` (the newest match).
pub(crate) fn resolve(arg: &str, bench_dir: &Path) -> Result<PathBuf, String> {
    let p = PathBuf::from(arg);
    if p.is_file() {
        return Ok(p);
    }
    let history = bench_dir.join("history");
    let mut hits: Vec<PathBuf> = std::fs::read_dir(&history)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.extension().is_some_and(|x| x == "json")
                && p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.contains(arg))
        })
        .collect();
    hits.sort();
    hits.pop().ok_or_else(|| {
        format!(
            "{arg}: no such file, and no run under {} has it in its name",
            history.display()
        )
    })
}

/// Runs the comparison: prints the report, fails on `--fail-above`.
pub(crate) fn run(req: &Request, bench_dir: &Path) -> Result<(), String> {
    let old = Run::load(&resolve(&req.old, bench_dir)?)?;
    let new_path = match &req.new {
        Some(n) => resolve(n, bench_dir)?,
        None => bench_dir.join("latest.json"),
    };
    let new = Run::load(&new_path)?;
    let changes = changes(&old, &new);
    print!("{}", render(&old, &new, &changes, req));
    let bad = failures(&changes, req.fail_above);
    if bad.is_empty() {
        return Ok(());
    }
    let mut msg = format!(
        "{} comparison(s) more than {}% slower relative to their baselines:",
        bad.len(),
        req.fail_above.unwrap_or_default()
    );
    for c in bad {
        let _ = write!(
            msg,
            "\n  {} {} vs {}: {:+.1}%",
            c.row.key,
            c.row.imp,
            c.label,
            c.percent().unwrap_or_default()
        );
    }
    Err(msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OLD: &str = r#"{
      "meta": {"commit": "aaaa", "date": "2026-12-01 10:00:00 UTC", "load_average": "0.5",
               "command": "cargo xtask bench"},
      "rows": [
        {"group": "ipc", "key": "ipc/spin/8", "name": "round trip", "impl": "raw spin", "size": 8,
         "unit": "us", "p50": 0.2, "vs": []},
        {"group": "ipc", "key": "ipc/mp/8", "name": "round trip", "impl": "mp Pipe", "size": 8,
         "unit": "us", "p50": 0.3, "baseline": ["ipc/spin/8", "ipc/py/8"],
         "vs": [{"baseline": "ipc/spin/8", "cost_ratio": 1.5},
                {"baseline": "ipc/py/8", "cost_ratio": 0.01}]},
        {"group": "ipc", "key": "ipc/py/8", "name": "round trip", "impl": "python Pipe",
         "size": 8, "unit": "us", "p50": 30, "vs": []},
        {"group": "lock", "key": "lock/cas", "name": "acquire", "impl": "raw CAS", "unit": "ns",
         "p50": 10, "vs": []},
        {"group": "lock", "key": "lock/mp", "name": "acquire", "impl": "mp Lock", "unit": "ns",
         "p50": 16, "baseline": ["lock/cas"], "vs": [{"baseline": "lock/cas", "cost_ratio": 1.6}]},
        {"group": "lock", "key": "lock/old", "name": "acquire", "impl": "gone", "unit": "ns",
         "p50": 16, "baseline": ["lock/cas"], "vs": [{"baseline": "lock/cas", "cost_ratio": 2}]}
      ]
    }"#;

    // Everything twice as slow in absolute time (a busy machine), but only mp Pipe vs raw spin
    // moved in ratio: +20%. vs Python it improved by 50%; the lock is within 5%.
    const NEW: &str = r#"{
      "meta": {"commit": "bbbb", "date": "2026-12-02 10:00:00 UTC", "load_average": "1.9",
               "command": "cargo xtask bench", "dirty": true},
      "rows": [
        {"group": "lock", "key": "lock/cas", "name": "acquire", "impl": "raw CAS", "unit": "ns",
         "p50": 20, "vs": []},
        {"group": "lock", "key": "lock/mp", "name": "acquire", "impl": "mp Lock", "unit": "ns",
         "p50": 33, "baseline": ["lock/cas"], "vs": [{"baseline": "lock/cas", "cost_ratio": 1.65}]},
        {"group": "ipc", "key": "ipc/spin/8", "name": "round trip", "impl": "raw spin", "size": 8,
         "unit": "us", "p50": 0.4, "vs": []},
        {"group": "ipc", "key": "ipc/mp/8", "name": "round trip", "impl": "mp Pipe", "size": 8,
         "unit": "us", "p50": 0.72, "baseline": ["ipc/spin/8", "ipc/py/8", "ipc/new/8"],
         "vs": [{"baseline": "ipc/spin/8", "cost_ratio": 1.8},
                {"baseline": "ipc/py/8", "cost_ratio": 0.005},
                {"baseline": "ipc/new/8", "cost_ratio": 3}]},
        {"group": "ipc", "key": "ipc/py/8", "name": "round trip", "impl": "python Pipe",
         "size": 8, "unit": "us", "p50": 144, "vs": []},
        {"group": "ipc", "key": "ipc/new/8", "name": "round trip", "impl": "raw new", "size": 8,
         "unit": "us", "p50": 0.24, "vs": []}
      ]
    }"#;

    fn runs() -> (Run, Run) {
        let dir = std::env::temp_dir().join(format!("xtask-compare-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (o, n) = (dir.join("old.json"), dir.join("new.json"));
        std::fs::write(&o, OLD).unwrap();
        std::fs::write(&n, NEW).unwrap();
        let runs = (Run::load(&o).unwrap(), Run::load(&n).unwrap());
        std::fs::remove_dir_all(&dir).unwrap();
        runs
    }

    fn req(fail_above: Option<f64>) -> Request {
        Request {
            old: "old.json".into(),
            new: None,
            threshold: DEFAULT_THRESHOLD,
            fail_above,
        }
    }

    #[test]
    fn changes_are_ratios_of_ratios_matched_by_row_and_baseline() {
        let (old, new) = runs();
        let c = changes(&old, &new);
        let got: Vec<(&str, &str, Option<f64>)> = c
            .iter()
            .map(|c| {
                (
                    c.row.key.as_str(),
                    c.baseline.as_str(),
                    c.percent().map(|p| (p * 10.0).round() / 10.0),
                )
            })
            .collect();
        // ipc first (report order), the old run's vanished row last.
        assert_eq!(
            got,
            [
                ("ipc/mp/8", "ipc/spin/8", Some(20.0)),
                ("ipc/mp/8", "ipc/py/8", Some(-50.0)),
                ("ipc/mp/8", "ipc/new/8", None),
                ("lock/mp", "lock/cas", Some(3.1)),
                ("lock/old", "lock/cas", None),
            ]
        );
        assert_eq!(c[0].label, "raw spin");
        assert_eq!(c[1].label, "python Pipe");
        let marks: Vec<&str> = c.iter().map(|c| mark(c, 5.0, None)).collect();
        assert_eq!(
            marks,
            [
                "**slower**",
                "faster",
                "not in old run",
                "",
                "not in new run"
            ]
        );
    }

    #[test]
    fn threshold_and_fail_above() {
        let (old, new) = runs();
        let c = changes(&old, &new);
        assert!(failures(&c, None).is_empty());
        assert!(failures(&c, Some(25.0)).is_empty());
        let f = failures(&c, Some(10.0));
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].row.key, "ipc/mp/8");
        // A wider threshold marks nothing; a narrower one marks the lock too.
        assert_eq!(mark(&c[0], 25.0, None), "");
        assert_eq!(mark(&c[3], 2.0, None), "**slower**");
        assert_eq!(mark(&c[0], 5.0, Some(10.0)), "**FAIL** slower");
        // A baseline of another group, left out of both runs (`--only`).
        let mut both = c[0].clone();
        (both.old, both.new) = (None, None);
        assert_eq!(mark(&both, 5.0, None), "baseline not measured");
    }

    #[test]
    fn only_the_projects_rows_can_fail() {
        let (old, new) = runs();
        let mut c = changes(&old, &new)[0].clone();
        assert_eq!(failures(std::slice::from_ref(&c), Some(10.0)).len(), 1);
        c.row.imp = "python Pipe".into();
        c.row.key = "ipc/py-pipe/8".into();
        assert!(failures(std::slice::from_ref(&c), Some(10.0)).is_empty());
        assert_eq!(mark(&c, 5.0, Some(10.0)), "**slower**");
    }

    #[test]
    fn the_report_has_a_table_per_group_and_a_summary() {
        let (old, new) = runs();
        let c = changes(&old, &new);
        let md = render(&old, &new, &c, &req(Some(10.0)));
        assert!(md.contains("commit aaaa, 2026-12-01"), "{md}");
        assert!(md.contains("commit bbbb, dirty tree"), "{md}");
        assert!(
            md.contains("\n### ipc\n") && md.contains("\n### lock\n"),
            "{md}"
        );
        assert!(
            md.contains(
                "| round trip | mp Pipe | 8 B | raw spin | 1.50x | 1.80x | +20.0% | **FAIL** slower |"
            ),
            "{md}"
        );
        assert!(
            md.contains("| acquire | mp Lock |  | raw CAS | 1.60x | 1.65x | +3.1% |  |"),
            "{md}"
        );
        assert!(
            md.contains(
                "The project's rows: 3 comparisons, 1 slower and 1 faster by more than 5%; \
                 largest increase +20.0% (round trip mp Pipe vs raw spin)."
            ),
            "{md}"
        );
    }

    #[test]
    fn run_fails_only_above_the_limit_and_finds_history_runs() {
        let dir = std::env::temp_dir().join(format!("xtask-compare-run-{}", std::process::id()));
        let history = dir.join("history");
        std::fs::create_dir_all(&history).unwrap();
        std::fs::write(history.join("2026-12-01T10-00-00Z_aaaa.json"), OLD).unwrap();
        std::fs::write(dir.join("latest.json"), NEW).unwrap();
        let mut r = req(Some(25.0));
        r.old = "aaaa".into();
        assert_eq!(run(&r, &dir), Ok(()));
        r.fail_above = Some(10.0);
        let e = run(&r, &dir).unwrap_err();
        assert!(e.contains("1 comparison(s) more than 10% slower"), "{e}");
        assert!(e.contains("ipc/mp/8 mp Pipe vs raw spin: +20.0%"), "{e}");
        r.old = "zzzz".into();
        assert!(run(&r, &dir).unwrap_err().contains("no such file"));
        r.old = "aaaa".into();
        r.new = Some(dir.join("missing.json").display().to_string());
        assert!(run(&r, &dir).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
