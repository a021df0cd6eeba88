//! Running other programs: quick captures, and long runs with a time limit whose stderr is
//! forwarded live.

use std::collections::VecDeque;
use std::io::{BufRead as _, BufReader, Read as _};
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

/// Runs `cmd` in its own process group, forwarding its stderr line by line with a `[label]`
/// prefix, and collecting its stdout. After `limit` the whole process group is killed.
pub(crate) fn run_limited(
    cmd: &mut Command,
    label: &str,
    limit: Duration,
) -> std::io::Result<Outcome> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()?;
    let mut stdout = child.stdout.take().expect("piped stdout");
    let stderr = child.stderr.take().expect("piped stderr");
    let (out_tx, out_rx) = mpsc::channel();
    thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        let _ = out_tx.send(s);
    });
    let label = label.to_owned();
    let (err_tx, err_rx) = mpsc::channel();
    thread::spawn(move || {
        let mut tail = VecDeque::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("[{label}] {line}");
            if tail.len() == 5 {
                tail.pop_front();
            }
            tail.push_back(line);
        }
        let _ = err_tx.send(Vec::from(tail));
    });
    let group = child.id();
    let kill_group = || {
        // The program and everything it started share the process group `group`.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{group}")])
            .stderr(Stdio::null())
            .status();
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
        thread::sleep(Duration::from_millis(20));
    };
    // A leftover grandchild may still hold the pipes open: give it a moment, then kill it.
    let grace = Duration::from_secs(10);
    let stdout = out_rx.recv_timeout(grace).unwrap_or_else(|_| {
        kill_group();
        out_rx.recv().unwrap_or_default()
    });
    let stderr_tail = err_rx.recv_timeout(grace).unwrap_or_else(|_| {
        kill_group();
        err_rx.recv().unwrap_or_default()
    });
    Ok(Outcome {
        stdout,
        status,
        stderr_tail,
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
        let o = run_limited(&mut c, "test", Duration::from_millis(300)).unwrap();
        assert!(
            t.elapsed() < Duration::from_secs(8),
            "took {:?}",
            t.elapsed()
        );
        assert!(o.status.is_none());
        assert_eq!(o.stdout, "out\n");
        assert_eq!(o.stderr_tail, ["err"]);
        assert_eq!(o.failure().as_deref(), Some("timed out: err"));
    }

    #[test]
    fn a_failing_run_reports_its_last_stderr_line() {
        let mut c = Command::new("sh");
        c.args(["-c", "echo a >&2; echo b >&2; exit 3"]);
        let o = run_limited(&mut c, "test", Duration::from_secs(30)).unwrap();
        assert_eq!(o.failure().as_deref(), Some("failed (exit status: 3): b"));
        assert_eq!(
            capture("sh", &["-c", "echo ' hi '"], Path::new("/")).as_deref(),
            Some("hi")
        );
        assert_eq!(capture("sh", &["-c", "exit 1"], Path::new("/")), None);
    }
}
