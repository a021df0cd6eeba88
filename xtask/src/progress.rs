//! The progress of `cargo xtask bench` on stderr: an indicatif line (step, last row, time
//! left) when stderr is a terminal, plain lines otherwise (CI logs, redirected output).
//!
//! The time left comes from the step times of the previous run with the same options
//! (`meta.steps` of `latest.json`); steps it did not have count as the average of those it had,
//! or as a fixed guess on a first run.

use std::collections::HashMap;
use std::io::IsTerminal as _;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use serde_json::{Value, json};

/// One step: a program run for one group (`mp-bench ipc`, `python/ipc.py`).
#[derive(Debug)]
pub(crate) struct Progress {
    bar: Option<ProgressBar>,
    steps: Vec<(String, f64)>,
    done: usize,
    step_started: Instant,
    /// Whether the estimates come from an earlier run.
    measured: bool,
    /// How long each finished step took, for the next run's estimates.
    pub(crate) took: Vec<(String, f64)>,
}

/// Step times of an earlier run (`meta.steps` of its JSON), if it ran with `command`.
pub(crate) fn previous_steps(latest: &Value, command: &str) -> HashMap<String, f64> {
    let meta = latest.get("meta");
    if meta.and_then(|m| m.get("command")).and_then(Value::as_str) != Some(command) {
        return HashMap::new();
    }
    meta.and_then(|m| m.get("steps"))
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter_map(|s| {
            Some((
                s.get("step")?.as_str()?.to_owned(),
                s.get("seconds")?.as_f64()?,
            ))
        })
        .collect()
}

/// Estimates for `steps` from `before`; a step it lacks counts as the average of the others,
/// or `guess` seconds when there are none.
pub(crate) fn estimates(
    steps: &[String],
    before: &HashMap<String, f64>,
    guess: f64,
) -> Vec<(String, f64)> {
    let known: Vec<f64> = steps
        .iter()
        .filter_map(|s| before.get(s).copied())
        .collect();
    let fill = if known.is_empty() {
        guess
    } else {
        known.iter().sum::<f64>() / known.len() as f64
    };
    steps
        .iter()
        .map(|s| (s.clone(), before.get(s).copied().unwrap_or(fill)))
        .collect()
}

impl Progress {
    /// `steps` in the order they will run, with their estimated seconds.
    pub(crate) fn new(steps: Vec<(String, f64)>, measured: bool) -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let b = ProgressBar::new(steps.len() as u64);
            b.set_style(
                ProgressStyle::with_template(
                    "{spinner} {elapsed:>4} [{bar:20}] {pos}/{len} {wide_msg}",
                )
                .expect("a valid template")
                .progress_chars("=> "),
            );
            b.enable_steady_tick(Duration::from_millis(250));
            b
        });
        Progress {
            bar,
            steps,
            done: 0,
            step_started: Instant::now(),
            measured,
            took: Vec::new(),
        }
    }

    /// Seconds left: the estimates of the steps not started, and what the current one has
    /// left of its own.
    pub(crate) fn left(&self) -> f64 {
        let current = self.steps.get(self.done).map_or(0.0, |(_, e)| {
            (e - self.step_started.elapsed().as_secs_f64()).max(0.0)
        });
        current
            + self
                .steps
                .iter()
                .skip(self.done + 1)
                .map(|(_, e)| e)
                .sum::<f64>()
    }

    fn left_text(&self) -> String {
        let s = self.left().round() as u64;
        let how = if self.measured { "" } else { " (a guess)" };
        if s >= 90 {
            format!("~{} min {} s left{how}", s / 60, s % 60)
        } else {
            format!("~{s} s left{how}")
        }
    }

    fn current(&self) -> &str {
        self.steps.get(self.done).map_or("", |(s, _)| s.as_str())
    }

    /// The next step begins.
    pub(crate) fn start(&mut self) {
        self.step_started = Instant::now();
        let msg = format!("{}: {}", self.left_text(), self.current());
        match &self.bar {
            Some(b) => b.set_message(msg),
            None => eprintln!(
                "xtask bench: [{}/{}] {msg}",
                self.done + 1,
                self.steps.len()
            ),
        }
    }

    /// The current step printed a row.
    pub(crate) fn row(&self, what: &str) {
        if let Some(b) = &self.bar {
            b.set_message(format!("{}: {}: {what}", self.left_text(), self.current()));
        }
    }

    /// A line of the programs' own output (stderr), above the progress line.
    pub(crate) fn log(&self, line: &str) {
        match &self.bar {
            Some(b) => b.println(line),
            None => eprintln!("{line}"),
        }
    }

    /// The current step has ended.
    pub(crate) fn finish_step(&mut self) {
        let secs = self.step_started.elapsed().as_secs_f64();
        self.took
            .push((self.current().to_owned(), (secs * 10.0).round() / 10.0));
        self.done += 1;
        if let Some(b) = &self.bar {
            b.inc(1);
        }
    }

    /// Clears the progress line.
    pub(crate) fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }

    /// `took` for `meta.steps`.
    pub(crate) fn steps_json(&self) -> Value {
        self.took
            .iter()
            .map(|(s, t)| json!({"step": s, "seconds": t}))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimates_come_from_the_previous_run_with_the_same_command() {
        let latest: Value = serde_json::from_str(
            r#"{"meta": {"command": "cargo xtask bench --quick",
                "steps": [{"step": "mp-bench ipc", "seconds": 12}, {"step": "python/ipc.py", "seconds": 4}]}}"#,
        )
        .unwrap();
        assert!(previous_steps(&latest, "cargo xtask bench").is_empty());
        let before = previous_steps(&latest, "cargo xtask bench --quick");
        assert_eq!(before.len(), 2);
        let steps = ["mp-bench ipc", "python/ipc.py", "mp-bench new"].map(String::from);
        let e = estimates(&steps, &before, 30.0);
        assert_eq!(
            e.iter().map(|(_, s)| *s).collect::<Vec<_>>(),
            [12.0, 4.0, 8.0]
        );
        assert_eq!(estimates(&steps[..1], &HashMap::new(), 30.0)[0].1, 30.0);
    }

    #[test]
    fn time_left_counts_down_through_the_steps() {
        // Not a terminal under cargo test: plain lines.
        let mut p = Progress::new(vec![("a".into(), 100.0), ("b".into(), 50.0)], true);
        p.start();
        let left = p.left();
        assert!(left > 149.0 && left <= 150.0, "{left}");
        p.finish_step();
        p.start();
        assert!(p.left() <= 50.0 && p.left() > 49.0);
        p.finish_step();
        assert_eq!(p.left(), 0.0);
        assert_eq!(p.took.len(), 2);
        assert_eq!(p.took[1].0, "b");
        p.finish();
    }
}
