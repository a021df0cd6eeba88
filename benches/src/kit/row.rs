//! One measured row, printed as one JSON object per line on stdout (the schema `cargo xtask
//! bench` reads; see `benches/README.md`).

use std::fmt::Write as _;
use std::io::Write as _;

use super::Stats;

/// The unit of a row's figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unit {
    /// Nanoseconds per operation.
    Ns,
    /// Microseconds per operation.
    Us,
    /// Milliseconds per operation.
    Ms,
    /// Messages per second.
    MsgPerSec,
    /// Gigabytes (10^9 bytes) per second.
    GBps,
}

impl Unit {
    /// The name used in the JSON rows.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Unit::Ns => "ns",
            Unit::Us => "us",
            Unit::Ms => "ms",
            Unit::MsgPerSec => "msg/s",
            Unit::GBps => "GB/s",
        }
    }

    /// For a time unit, how many of it make a second; for a rate unit, how many base units
    /// (messages, bytes) make one of it.
    pub(crate) fn scale(self) -> f64 {
        match self {
            Unit::Ns | Unit::GBps => 1e9,
            Unit::Us => 1e6,
            Unit::Ms => 1e3,
            Unit::MsgPerSec => 1.0,
        }
    }
}

/// A row under construction: `Row::new(..).size(8).baseline(&[..]).stats(..).emit()`.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    group: &'static str,
    key: String,
    name: String,
    imp: String,
    size: Option<u64>,
    unit: Unit,
    stats: Option<Stats>,
    note: String,
    baseline: Vec<String>,
    round_trip: bool,
}

impl Row {
    /// A row of `group` with a unique `key` (by convention `group/impl-slug/size`), a `name`
    /// saying what is measured (`"round trip"`, `"start + join"`) and the implementation
    /// measured (`"raw futex"`, `"python Pipe"`, `"mp Pipe (default)"`).
    pub(crate) fn new(group: &'static str, key: &str, name: &str, imp: &str) -> Self {
        Self {
            group,
            key: key.to_owned(),
            name: name.to_owned(),
            imp: imp.to_owned(),
            size: None,
            unit: Unit::Us,
            stats: None,
            note: String::new(),
            baseline: Vec::new(),
            round_trip: false,
        }
    }

    /// The message or buffer size in bytes.
    pub(crate) fn size(mut self, bytes: u64) -> Self {
        self.size = Some(bytes);
        self
    }

    /// Marks the figures as round trips (the table adds a one-way = p50 / 2 column).
    pub(crate) fn round_trip(mut self) -> Self {
        self.round_trip = true;
        self
    }

    /// Keys of the rows this one is compared against, in the table's "vs baseline" column.
    pub(crate) fn baseline(mut self, keys: &[&str]) -> Self {
        self.baseline.extend(keys.iter().map(|k| (*k).to_owned()));
        self
    }

    /// Appends to the free-text note (joined with "; ").
    pub(crate) fn note(mut self, note: impl AsRef<str>) -> Self {
        if !self.note.is_empty() {
            self.note.push_str("; ");
        }
        self.note.push_str(note.as_ref());
        self
    }

    /// The figures and their unit.
    pub(crate) fn stats(mut self, unit: Unit, stats: Stats) -> Self {
        self.unit = unit;
        self.stats = Some(stats);
        self
    }

    /// The row as one JSON object (no newline).
    ///
    /// # Panics
    ///
    /// If no stats were set.
    pub(crate) fn to_json(&self) -> String {
        let s = self.stats.expect("row without stats");
        let mut o = String::from("{");
        let _ = write!(o, "\"group\":{}", json_str(self.group));
        let _ = write!(o, ",\"key\":{}", json_str(&self.key));
        let _ = write!(o, ",\"name\":{}", json_str(&self.name));
        let _ = write!(o, ",\"impl\":{}", json_str(&self.imp));
        let _ = write!(
            o,
            ",\"size\":{}",
            self.size.map_or("null".into(), |b| b.to_string())
        );
        let _ = write!(o, ",\"unit\":{}", json_str(self.unit.as_str()));
        let _ = write!(o, ",\"p50\":{}", json_num(Some(s.p50)));
        let _ = write!(o, ",\"p99\":{}", json_num(s.p99));
        let _ = write!(o, ",\"mean\":{}", json_num(Some(s.mean)));
        let _ = write!(o, ",\"n\":{}", s.n);
        let _ = write!(o, ",\"round_trip\":{}", self.round_trip);
        let keys: Vec<String> = self.baseline.iter().map(|k| json_str(k)).collect();
        let _ = write!(o, ",\"baseline\":[{}]", keys.join(","));
        let _ = write!(o, ",\"note\":{}", json_str(&self.note));
        o.push('}');
        o
    }

    /// Prints the row to stdout (one line, flushed) and a progress line to stderr.
    pub(crate) fn emit(self) {
        let line = self.to_json();
        let s = self.stats.expect("row without stats");
        eprintln!(
            "  {:<40} {:>12.4} {} (n={})",
            format!("{} / {}", self.name, self.imp),
            s.p50,
            self.unit.as_str(),
            s.n
        );
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }
}

fn json_str(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(o, "\\u{:04x}", u32::from(c));
            }
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

fn json_num(v: Option<f64>) -> String {
    match v {
        Some(x) if x.is_finite() => format!("{x:e}"),
        _ => "null".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_json() {
        let s = Stats {
            p50: 1.5,
            p99: None,
            mean: 2.0,
            n: 3,
        };
        let r = Row::new("ipc", "ipc/x/8", "round trip", "raw \"x\"\n")
            .size(8)
            .round_trip()
            .baseline(&["ipc/a", "ipc/b"])
            .note("a")
            .note("b")
            .stats(Unit::Us, s);
        assert_eq!(
            r.to_json(),
            r#"{"group":"ipc","key":"ipc/x/8","name":"round trip","impl":"raw \"x\"\n","size":8,"unit":"us","p50":1.5e0,"p99":null,"mean":2e0,"n":3,"round_trip":true,"baseline":["ipc/a","ipc/b"],"note":"a; b"}"#
        );
    }
}
