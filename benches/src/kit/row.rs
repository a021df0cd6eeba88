//! One measured row, printed as one JSON object per line on stdout (the schema `cargo xtask
//! bench` reads; see `benches/README.md`).

use std::io::Write as _;

pub(crate) use mp_bench_row::Row;

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

/// A row under construction: `RowBuilder::new(..).size(8).baseline(&[..]).stats(..).emit()`.
/// What it emits is the one [`Row`] type that `cargo xtask bench` reads back.
#[derive(Debug, Clone)]
pub(crate) struct RowBuilder {
    row: Row,
    unit: Unit,
    stats: Option<Stats>,
}

impl RowBuilder {
    /// A row of `group` with a unique `key` (by convention `group/impl-slug/size`), a `name`
    /// saying what is measured (`"round trip"`, `"start + join"`) and the implementation
    /// measured (`"raw futex"`, `"python Pipe"`, `"mp Pipe (default)"`).
    pub(crate) fn new(group: &'static str, key: &str, name: &str, imp: &str) -> Self {
        Self {
            row: Row {
                group: group.to_owned(),
                key: key.to_owned(),
                name: name.to_owned(),
                imp: imp.to_owned(),
                size: None,
                unit: String::new(),
                p50: f64::NAN,
                p99: None,
                mean: None,
                n: 0,
                round_trip: false,
                baseline: Vec::new(),
                note: String::new(),
                source: String::new(),
            },
            unit: Unit::Us,
            stats: None,
        }
    }

    /// The message or buffer size in bytes.
    pub(crate) fn size(mut self, bytes: u64) -> Self {
        self.row.size = Some(bytes);
        self
    }

    /// Marks the figures as round trips (the table adds a one-way = p50 / 2 column).
    pub(crate) fn round_trip(mut self) -> Self {
        self.row.round_trip = true;
        self
    }

    /// Keys of the rows this one is compared against, in the table's "vs baseline" column.
    pub(crate) fn baseline(mut self, keys: &[&str]) -> Self {
        self.row
            .baseline
            .extend(keys.iter().map(|k| (*k).to_owned()));
        self
    }

    /// Appends to the free-text note (joined with "; ").
    pub(crate) fn note(mut self, note: impl AsRef<str>) -> Self {
        if !self.row.note.is_empty() {
            self.row.note.push_str("; ");
        }
        self.row.note.push_str(note.as_ref());
        self
    }

    /// The figures and their unit.
    pub(crate) fn stats(mut self, unit: Unit, stats: Stats) -> Self {
        self.unit = unit;
        self.stats = Some(stats);
        self
    }

    /// The finished row.
    ///
    /// # Panics
    ///
    /// If no stats were set.
    pub(crate) fn build(&self) -> Row {
        let s = self.stats.expect("row without stats");
        Row {
            unit: self.unit.as_str().to_owned(),
            p50: s.p50,
            p99: s.p99,
            mean: Some(s.mean),
            n: s.n,
            ..self.row.clone()
        }
    }

    /// Prints the row to stdout (one JSON line, flushed) and a progress line to stderr.
    pub(crate) fn emit(self) {
        let row = self.build();
        eprintln!(
            "  {:<40} {:>12.4} {} (n={})",
            format!("{} / {}", row.name, row.imp),
            row.p50,
            row.unit,
            row.n
        );
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{}", row.to_line());
        let _ = out.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builder_fills_every_field() {
        let s = Stats {
            p50: 1.5,
            p99: None,
            mean: 2.0,
            n: 3,
        };
        let r = RowBuilder::new("ipc", "ipc/x/8", "round trip", "raw x")
            .size(8)
            .round_trip()
            .baseline(&["ipc/a", "ipc/b"])
            .note("a")
            .note("b")
            .stats(Unit::Us, s)
            .build();
        assert_eq!(
            r.to_line(),
            r#"{"group":"ipc","key":"ipc/x/8","name":"round trip","impl":"raw x","size":8,"unit":"us","p50":1.5,"p99":null,"mean":2.0,"n":3,"round_trip":true,"baseline":["ipc/a","ipc/b"],"note":"a; b"}"#
        );
    }
}
