//! Running other programs: quick captures, and long runs with a time limit whose stderr is
//! forwarded live.

use std::collections::VecDeque;
use std::io::{BufRead as _, BufReader};
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// Runs `program args` and returns its trimmed stdout, or `None` if it could not run or failed.
pub(crate) fn capture(program: &str, args: &[&str], dir: &Path) -> Option<String> {
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .stderr(Stdio::null())
        .output();
    match out {
        Ok(o) if o.status.success() => Some(String::from_utf8_lossy(&o.stdout).trim().to_owned()),
        _ => None,
    }
}

/// How a long run ended.
#[derive(Debug)]
pub(crate) struct Outcome {
    /// Everything the program printed on stdout.
    pub(crate) stdout: String,
    /// Its exit status; `None` if it was killed for running past the time limit.
    pub(crate) status: Option<ExitStatus>,
    /// The last few lines it printed on stderr.
    pub(crate) stderr_tail: Vec<String>,
}

impl Outcome {
    /// A one-line description of a failure, `None` on success.
    pub(crate) fn failure(&self) -> Option<String> {
        let why = match self.status {
            Some(s) if s.success() => return None,
            Some(s) => format!("failed ({s})"),
            None => "timed out".to_owned(),
        };
        Some(match self.stderr_tail.last() {
            Some(line) => format!("{why}: {line}"),
            None => why,
        })
    }
}

/// A line a program printed, as [`run_limited`] hands it to its caller.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Line<'a> {
    Out(&'a str),
    Err(&'a str),
}

/// Reads `from` line by line into `to` (lossy UTF-8), then reports the end with `None`.
fn forward(from: impl std::io::Read, to: mpsc::Sender<(bool, Option<String>)>, is_out: bool) {
    let mut r = BufReader::new(from);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match r.read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                let line = String::from_utf8_lossy(&buf);
                let line = line.trim_end_matches(['\n', '\r']).to_owned();
                if to.send((is_out, Some(line))).is_err() {
                    return;
                }
            }
        }
    }
    let _ = to.send((is_out, None));
}

/// Runs `cmd` in its own process group, handing every line it prints to `on_line` (on the
/// calling thread, as it comes) and collecting its stdout. After `limit` the whole process
/// group is killed.
pub(crate) fn run_limited(
    cmd: &mut Command,
    limit: Duration,
    mut on_line: impl FnMut(Line<'_>),
) -> std::io::Result<Outcome> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()?;
    let stdout = child.stdout.take().expect("piped stdout");
    let stderr = child.stderr.take().expect("piped stderr");
    let (tx, rx) = mpsc::channel();
    let tx2 = tx.clone();
    thread::spawn(move || forward(stdout, tx, true));
    thread::spawn(move || forward(stderr, tx2, false));
    let group = child.id();
    let kill_group = || {
        // The program and everything it started share the process group `group`.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{group}")])
            .stderr(Stdio::null())
            .status();
    };
    let mut out = String::new();
    let mut tail = VecDeque::new();
    let mut open = 2;
    let mut take = |(is_out, line): (bool, Option<String>), open: &mut i32| match line {
        None => *open -= 1,
        Some(l) if is_out => {
            on_line(Line::Out(&l));
            out.push_str(&l);
            out.push('\n');
        }
        Some(l) => {
            on_line(Line::Err(&l));
            if tail.len() == 5 {
                tail.pop_front();
            }
            tail.push_back(l);
        }
    };
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait()? {
            break Some(s);
        }
        if start.elapsed() > limit {
            kill_group();
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        if let Ok(x) = rx.recv_timeout(Duration::from_millis(20)) {
            take(x, &mut open);
        }
    };
    // A leftover grandchild may still hold the pipes open: give it a moment, then kill it.
    let grace = Instant::now() + Duration::from_secs(10);
    let mut killed = false;
    while open > 0 {
        let next = if killed {
            rx.recv().ok()
        } else {
            match rx.recv_timeout(grace.saturating_duration_since(Instant::now())) {
                Ok(x) => Some(x),
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    kill_group();
                    killed = true;
                    continue;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => None,
            }
        };
        match next {
            Some(x) => take(x, &mut open),
            None => break,
        }
    }
    Ok(Outcome {
        stdout: out,
        status,
        stderr_tail: Vec::from(tail),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_past_its_limit_is_killed_with_its_children() {
        let t = Instant::now();
        let mut c = Command::new("sh");
        c.args(["-c", "echo out; echo err >&2; sleep 30 & sleep 30"]);
        let mut lines = Vec::new();
        let o = run_limited(&mut c, Duration::from_millis(300), |l| {
            lines.push(format!("{l:?}"))
        })
        .unwrap();
        assert!(
            t.elapsed() < Duration::from_secs(8),
            "took {:?}",
            t.elapsed()
        );
        assert!(o.status.is_none());
        assert_eq!(o.stdout, "out\n");
        assert_eq!(o.stderr_tail, ["err"]);
        assert_eq!(o.failure().as_deref(), Some("timed out: err"));
        lines.sort();
        assert_eq!(lines, ["Err(\"err\")", "Out(\"out\")"]);
    }

    #[test]
    fn a_failing_run_reports_its_last_stderr_line() {
        let mut c = Command::new("sh");
        c.args(["-c", "echo a >&2; echo b >&2; exit 3"]);
        let o = run_limited(&mut c, Duration::from_secs(30), |_| {}).unwrap();
        assert_eq!(o.failure().as_deref(), Some("failed (exit status: 3): b"));
        assert_eq!(
            capture("sh", &["-c", "echo ' hi '"], Path::new("/")).as_deref(),
            Some("hi")
        );
        assert_eq!(capture("sh", &["-c", "exit 1"], Path::new("/")), None);
    }
}
