//! One benchmark row, as the `mp-bench` harness and the Python scripts print it (one JSON
//! object per line) and as `cargo xtask bench` reads it back. The schema is in
//! `benches/README.md`.
//!
//! ```
//! use mp_bench_row::Row;
//!
//! let row = Row::from_line(
//!     r#"{"group":"ipc","name":"round trip","impl":"mp Pipe","size":8,"unit":"us","p50":0.2}"#,
//! )?;
//! assert_eq!(row.key, "ipc/mp Pipe/8");
//! assert_eq!(row.p99, None);
//! let again = Row::from_line(&row.to_line())?;
//! assert_eq!(again, row);
//! # Ok::<(), serde_json::Error>(())
//! ```

use serde::{Deserialize, Deserializer, Serialize};

/// One measured row.
///
/// Required in the JSON: `group`, `name`, `impl`, `unit`, `p50`. A missing `key` becomes
/// `group/impl/size` (or `group/impl`) in [`Row::from_line`]. Non-finite figures are written
/// as `null` (serde_json does so for `f64`), and `null` reads back as `None`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    /// The group (`ipc`, `process`, `pool`, `lock`, `manager`, ...).
    pub group: String,
    /// Unique key, by convention `group/impl-slug/size`.
    #[serde(default)]
    pub key: String,
    /// What is measured (`round trip`, `start + join`).
    pub name: String,
    /// The implementation measured (`raw futex`, `python Pipe`, `mp Pipe (default)`).
    #[serde(rename = "impl")]
    pub imp: String,
    /// Message or buffer size in bytes.
    #[serde(default, deserialize_with = "opt_count")]
    pub size: Option<u64>,
    /// Unit of the figures: `ns`, `us`, `ms`, `s`, `msg/s`, `GB/s`, `MB/s`.
    pub unit: String,
    /// Median.
    pub p50: f64,
    /// 99th percentile, when measured.
    #[serde(default)]
    pub p99: Option<f64>,
    /// Mean, when measured.
    #[serde(default)]
    pub mean: Option<f64>,
    /// Number of samples.
    #[serde(default, deserialize_with = "count")]
    pub n: u64,
    /// The figures are round trips (the table adds a one-way = p50 / 2 column).
    #[serde(default)]
    pub round_trip: bool,
    /// Keys of the rows this one is compared against.
    #[serde(default)]
    pub baseline: Vec<String>,
    /// Free text.
    #[serde(default)]
    pub note: String,
    /// Which program measured it (`mp-bench ipc`, `python/ipc.py`); set by the reader, absent
    /// from the harness's lines.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub source: String,
}

impl Row {
    /// Reads one row from a JSON line, filling in a missing key.
    ///
    /// # Errors
    ///
    /// When the line is not a JSON object with the required fields.
    pub fn from_line(line: &str) -> Result<Row, serde_json::Error> {
        let mut row: Row = serde_json::from_str(line)?;
        row.fill_key();
        Ok(row)
    }

    /// The row as one JSON line (no newline).
    pub fn to_line(&self) -> String {
        serde_json::to_string(self).expect("a row always serializes")
    }

    /// Sets `key` to `group/impl/size` (or `group/impl`) if it is empty.
    pub fn fill_key(&mut self) {
        if self.key.is_empty() {
            self.key = match self.size {
                Some(b) => format!("{}/{}/{b}", self.group, self.imp),
                None => format!("{}/{}", self.group, self.imp),
            };
        }
    }
}

impl Row {
    /// Measured by a Python script (`benches/python/`).
    pub fn is_python(&self) -> bool {
        self.source.starts_with("python") || self.imp.starts_with("python")
    }

    /// A row of the project's crates: `impl` "mp ..." or a key `group/mp-...`
    /// (`benches/README.md`); every other row that is not Python is an OS limit or a
    /// reference (raw syscalls, spin, memcpy, rayon, std).
    pub fn is_project(&self) -> bool {
        self.imp.starts_with("mp ")
            || self
                .key
                .split('/')
                .nth(1)
                .is_some_and(|s| s.starts_with("mp-"))
    }

    /// Cost of the median in a unit-independent form: `("time", seconds)` for time units,
    /// seconds per message or per byte for rates. `None` for unknown units.
    pub fn cost(&self) -> Option<(&'static str, f64)> {
        let x = self.p50;
        Some(match self.unit.as_str() {
            "ns" => ("time", x * 1e-9),
            "us" => ("time", x * 1e-6),
            "ms" => ("time", x * 1e-3),
            "s" => ("time", x),
            "msg/s" => ("per msg", 1.0 / x),
            "GB/s" => ("per byte", 1.0 / (x * 1e9)),
            "MB/s" => ("per byte", 1.0 / (x * 1e6)),
            _ => return None,
        })
    }
}

/// A count written as any JSON number (`1000` or `1e3`); negative or fractional values are
/// refused.
fn count<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let x = f64::deserialize(d)?;
    if x >= 0.0 && x.fract() == 0.0 && x < 2f64.powi(53) {
        Ok(x as u64)
    } else {
        Err(serde::de::Error::custom(format!("{x} is not a count")))
    }
}

fn opt_count<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    let x = Option::<f64>::deserialize(d)?;
    match x {
        None => Ok(None),
        Some(x) if x >= 0.0 && x.fract() == 0.0 && x < 2f64.powi(53) => Ok(Some(x as u64)),
        Some(x) => Err(serde::de::Error::custom(format!("{x} is not a size"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_round_trips_and_non_finite_figures_become_null() {
        let row = Row {
            group: "ipc".into(),
            key: "ipc/x/8".into(),
            name: "round trip".into(),
            imp: "raw \"x\"\n".into(),
            size: Some(8),
            unit: "us".into(),
            p50: 1.5,
            p99: Some(f64::NAN),
            mean: Some(2.0),
            n: 3,
            round_trip: true,
            baseline: vec!["ipc/a".into(), "ipc/b".into()],
            note: "a; b".into(),
            source: String::new(),
        };
        let line = row.to_line();
        assert!(line.contains(r#""p99":null"#), "{line}");
        assert!(!line.contains("source"), "{line}");
        let back = Row::from_line(&line).unwrap();
        assert_eq!(back.p99, None);
        assert_eq!(Row { p99: None, ..row }, back);
    }

    #[test]
    fn counts_may_be_written_as_floats_but_must_be_counts() {
        let base = r#"{"group":"g","name":"n","impl":"i","unit":"us","p50":1"#;
        let r = Row::from_line(&format!(r#"{base},"n":1e3,"size":8.0}}"#)).unwrap();
        assert_eq!((r.n, r.size), (1000, Some(8)));
        assert_eq!(r.key, "g/i/8");
        assert!(Row::from_line(&format!(r#"{base},"n":-1}}"#)).is_err());
        assert!(Row::from_line(&format!(r#"{base},"size":1.5}}"#)).is_err());
        assert!(Row::from_line(r#"{"group":"g","name":"n","impl":"i","unit":"us"}"#).is_err());
    }
}
