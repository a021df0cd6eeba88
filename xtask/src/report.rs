//! Benchmark rows as `cargo xtask bench` reads them, their baseline ratios, and the report
//! (markdown table and `latest.json`).

use std::fmt::Write as _;

use serde_json::{Value, json};

/// Groups shown first, in this order; any other group follows in order of appearance.
const GROUP_ORDER: &[&str] = &["ipc", "process", "pool", "lock", "manager"];

/// One measured row (the JSON-line schema of `benches/README.md`).
pub(crate) use mp_bench_row::Row;

/// A row compared with one of its baselines.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Ratio {
    pub(crate) baseline: String,
    /// How many times the baseline's cost the row's median costs (time per operation, or the
    /// inverse of a rate): 2.0 = twice as slow, 0.5 = twice as fast. `None` if the baseline
    /// was not measured in this run or the units do not compare.
    pub(crate) cost_ratio: Option<f64>,
    /// Short human description, e.g. "3.2x slower than raw futex".
    pub(crate) text: String,
}

/// Compares every row with its declared baselines.
pub(crate) fn ratios(rows: &[Row]) -> Vec<Vec<Ratio>> {
    rows.iter()
        .map(|row| {
            row.baseline
                .iter()
                .map(|key| {
                    let Some(base) = rows.iter().find(|r| &r.key == key) else {
                        return Ratio {
                            baseline: key.clone(),
                            cost_ratio: None,
                            text: format!("{key}: not measured"),
                        };
                    };
                    let label = label(row, base);
                    match (row.cost(), base.cost()) {
                        (Some((a, x)), Some((b, y))) if a == b && y > 0.0 && x.is_finite() => {
                            let r = x / y;
                            Ratio {
                                baseline: key.clone(),
                                cost_ratio: Some(r),
                                text: say(r, &label),
                            }
                        }
                        _ => Ratio {
                            baseline: key.clone(),
                            cost_ratio: None,
                            text: format!("{label}: units differ"),
                        },
                    }
                })
                .collect()
        })
        .collect()
}

/// How to name `base` next to `row`: its impl, plus whatever differs (size, what).
pub(crate) fn label(row: &Row, base: &Row) -> String {
    let mut l = base.imp.clone();
    if base.name != row.name {
        let _ = write!(l, " {}", base.name);
    }
    if let Some(b) = base.size.filter(|_| base.size != row.size) {
        let _ = write!(l, " {}", fmt_size(b));
    }
    l
}

fn say(r: f64, label: &str) -> String {
    if (0.95..=1.05).contains(&r) {
        format!("≈ {label}")
    } else if r > 1.0 {
        format!("{}x slower than {label}", sig(r, 2))
    } else {
        format!("{}x faster than {label}", sig(1.0 / r, 2))
    }
}

/// `x` with `digits` significant digits, no exponent, no trailing zeros beyond them.
pub(crate) fn sig(x: f64, digits: i32) -> String {
    if x == 0.0 || !x.is_finite() {
        return format!("{x}");
    }
    let mag = x.abs().log10().floor() as i32;
    let decimals = (digits - 1 - mag).max(0) as usize;
    format!("{x:.decimals$}")
}

/// A figure with its unit; large rates get a k / M / G suffix.
pub(crate) fn fmt_value(x: f64, unit: &str) -> String {
    if unit.ends_with("/s") && !unit.starts_with(['G', 'M', 'k']) {
        for (div, suffix) in [(1e9, "G"), (1e6, "M"), (1e3, "k")] {
            if x >= div {
                return format!("{}{suffix} {unit}", sig(x / div, 3));
            }
        }
    }
    format!("{} {unit}", sig(x, 3))
}

/// Bytes as `8 B`, `64 KiB`, `1 MiB`.
pub(crate) fn fmt_size(b: u64) -> String {
    for (shift, suffix) in [(30, "GiB"), (20, "MiB"), (10, "KiB")] {
        if b >= 1 << shift && b.is_multiple_of(1 << shift) {
            return format!("{} {suffix}", b >> shift);
        }
    }
    format!("{b} B")
}

fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// Rows of each group, groups in display order, rows grouped by what they measure (first
/// appearance), then by size, then in the order they were measured.
pub(crate) fn arrange(rows: &[Row]) -> Vec<(String, Vec<usize>)> {
    let mut groups: Vec<String> = GROUP_ORDER
        .iter()
        .filter(|g| rows.iter().any(|r| r.group == **g))
        .map(|g| g.to_string())
        .collect();
    for r in rows {
        if !groups.contains(&r.group) {
            groups.push(r.group.clone());
        }
    }
    groups
        .into_iter()
        .map(|g| {
            let mut idx: Vec<usize> = (0..rows.len()).filter(|&i| rows[i].group == g).collect();
            let first = |name: &str| rows.iter().position(|r| r.group == g && r.name == name);
            idx.sort_by_key(|&i| (first(&rows[i].name), rows[i].size, i));
            (g, idx)
        })
        .collect()
}

/// The markdown tables (one per group), without the header.
pub(crate) fn tables(rows: &[Row], ratios: &[Vec<Ratio>]) -> String {
    let mut md = String::new();
    for (group, idx) in arrange(rows) {
        let _ = writeln!(md, "\n### {group}\n");
        md.push_str("| what | impl | size | p50 | p99 | one-way p50 | n | vs baseline | note |\n");
        md.push_str("|---|---|---|--:|--:|--:|--:|---|---|\n");
        for i in idx {
            let r = &rows[i];
            let vs: Vec<&str> = ratios[i].iter().map(|x| x.text.as_str()).collect();
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                cell(&r.name),
                cell(&r.imp),
                r.size.map(fmt_size).unwrap_or_default(),
                fmt_value(r.p50, &r.unit),
                r.p99
                    .map(|x| fmt_value(x, &r.unit))
                    .unwrap_or_else(|| "—".into()),
                if r.round_trip {
                    fmt_value(r.p50 / 2.0, &r.unit)
                } else {
                    String::new()
                },
                r.n,
                cell(&vs.join("; ")),
                cell(&r.note),
            );
        }
    }
    md
}

/// A row with its ratios, for `latest.json`.
pub(crate) fn row_json(r: &Row, ratios: &[Ratio]) -> Value {
    let vs: Vec<Value> = ratios
        .iter()
        .map(|x| json!({"baseline": x.baseline, "cost_ratio": x.cost_ratio}))
        .collect();
    let mut v = serde_json::to_value(r).expect("a row always serializes");
    if let Value::Object(m) = &mut v {
        m.insert(
            "one_way_p50".into(),
            json!(r.round_trip.then(|| r.p50 / 2.0)),
        );
        m.insert("vs".into(), Value::Array(vs));
        m.insert("source".into(), json!(r.source));
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(line: &str) -> Row {
        Row::from_line(line).unwrap()
    }

    #[test]
    fn ratios_compare_medians_in_cost() {
        let rows = [
            row(
                r#"{"group":"ipc","key":"a","name":"rt","impl":"raw futex","size":8,"unit":"us","p50":10}"#,
            ),
            row(
                r#"{"group":"ipc","key":"b","name":"rt","impl":"mp","size":8,"unit":"ns","p50":5000,"baseline":["a","zz"]}"#,
            ),
            row(
                r#"{"group":"ipc","key":"c","name":"stream","impl":"ring","unit":"msg/s","p50":1e6}"#,
            ),
            row(
                r#"{"group":"ipc","key":"d","name":"stream","impl":"py","unit":"msg/s","p50":2.5e5,"baseline":["c","a"]}"#,
            ),
        ];
        let r = ratios(&rows);
        let close = |x: Option<f64>, y: f64| x.is_some_and(|x| (x - y).abs() < 1e-9);
        assert!(close(r[1][0].cost_ratio, 0.5));
        assert_eq!(r[1][0].text, "2.0x faster than raw futex");
        assert_eq!(r[1][1].cost_ratio, None);
        assert_eq!(r[1][1].text, "zz: not measured");
        assert!(close(r[3][0].cost_ratio, 4.0));
        assert_eq!(r[3][0].text, "4.0x slower than ring");
        assert_eq!(r[3][1].text, "raw futex rt 8 B: units differ");
    }

    #[test]
    fn missing_key_is_derived_and_required_fields_checked() {
        let r = row(r#"{"group":"g","name":"n","impl":"i","size":8,"unit":"us","p50":1}"#);
        assert_eq!(r.key, "g/i/8");
        assert!(Row::from_line(r#"{"group":"g","name":"n","unit":"us","p50":1}"#).is_err());
    }

    #[test]
    fn formatting() {
        assert_eq!(sig(0.22819, 3), "0.228");
        assert_eq!(sig(11.064, 3), "11.1");
        assert_eq!(sig(356.4, 3), "356");
        assert_eq!(sig(0.000_612, 3), "0.000612");
        assert_eq!(fmt_value(5.7e8, "msg/s"), "570M msg/s");
        assert_eq!(fmt_value(4.6078, "GB/s"), "4.61 GB/s");
        assert_eq!(fmt_size(8), "8 B");
        assert_eq!(fmt_size(65536), "64 KiB");
        assert_eq!(fmt_size(64 << 20), "64 MiB");
        assert_eq!(fmt_size(1000), "1000 B");
    }

    #[test]
    fn arrange_puts_like_rows_together() {
        let rows = [
            row(r#"{"group":"pool","name":"map","impl":"rayon","unit":"us","p50":1}"#),
            row(r#"{"group":"ipc","name":"rt","impl":"spin","size":8,"unit":"us","p50":1}"#),
            row(r#"{"group":"ipc","name":"rt","impl":"sock","size":1024,"unit":"us","p50":1}"#),
            row(r#"{"group":"ipc","name":"bw","impl":"memcpy","unit":"GB/s","p50":1}"#),
            row(r#"{"group":"ipc","name":"rt","impl":"py","size":8,"unit":"us","p50":1}"#),
            row(r#"{"group":"zzz","name":"x","impl":"y","unit":"us","p50":1}"#),
        ];
        let a = arrange(&rows);
        let names: Vec<&str> = a.iter().map(|(g, _)| g.as_str()).collect();
        assert_eq!(names, ["ipc", "pool", "zzz"]);
        assert_eq!(a[0].1, [1, 4, 2, 3]);
        let md = tables(&rows, &ratios(&rows));
        assert!(md.contains("| rt | spin | 8 B | 1.00 us | — |"), "{md}");
    }
}
