//! `target/bench/latest.svg`: one panel per group; each of the project's rows (`mp ...`) is a
//! line of the panel, with a bar of its cost ratio to its OS limit and one to Python,
//! on a log scale centred on 1 (= as fast as the baseline). Bars that go left of 1 are faster
//! than the baseline, bars that go right are slower; the same scale for every panel.
//!
//! Drawn with plotters' SVG backend alone (no fonts are loaded: the SVG names a font family
//! and the viewer draws the text).

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::report::{self, Ratio, Row};

/// Bars against the OS limit (`raw ...` rows, memcpy, rayon: everything the harness measures
/// without the project's crates).
pub(crate) const OS_COLOR: RGBColor = RGBColor(0x1f, 0x77, 0xb4);
/// Bars against Python's multiprocessing.
pub(crate) const PY_COLOR: RGBColor = RGBColor(0xe6, 0x7e, 0x22);

const WIDTH: u32 = 1400;
const LINE: u32 = 34;
const PANEL_EXTRA: u32 = 92;
const HEADER: u32 = 96;
const LABEL_AREA: u32 = 420;
const FONT: &str = "sans-serif";

/// About how many pixels a bar's figure takes (13-point text is about 10.5 px high; its
/// characters are 6 to 7 px wide on average).
fn text_width(text: &str) -> i32 {
    8 + 7 * text.chars().count() as i32
}

/// One line of a panel: a row and its ratio to its first OS-limit and first Python baseline.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Line {
    pub(crate) label: String,
    /// (ratio, "1.4x slower than raw spin")
    pub(crate) os: Option<(f64, String)>,
    pub(crate) py: Option<(f64, String)>,
}

/// The panels: groups in report order, each with the project's rows that have an OS-limit or
/// a Python baseline measured in this run; groups without such rows have no panel.
pub(crate) fn panels(rows: &[Row], ratios: &[Vec<Ratio>]) -> Vec<(String, Vec<Line>)> {
    report::arrange(rows)
        .into_iter()
        .map(|(group, idx)| {
            let lines = idx
                .into_iter()
                .filter(|&i| rows[i].is_project())
                .filter_map(|i| {
                    let row = &rows[i];
                    let mut line = Line {
                        label: row_label(row),
                        os: None,
                        py: None,
                    };
                    for x in &ratios[i] {
                        let (Some(r), Some(base)) =
                            (x.cost_ratio, rows.iter().find(|b| b.key == x.baseline))
                        else {
                            continue;
                        };
                        let slot = if base.is_python() {
                            &mut line.py
                        } else if !base.is_project() {
                            &mut line.os
                        } else {
                            continue; // another of the project's rows
                        };
                        if slot.is_none() {
                            *slot = Some((r, x.text.clone()));
                        }
                    }
                    (line.os.is_some() || line.py.is_some()).then_some(line)
                })
                .collect::<Vec<_>>();
            (group, lines)
        })
        .filter(|(_, lines)| !lines.is_empty())
        .collect()
}

fn row_label(r: &Row) -> String {
    let mut s = format!("{}: {}", r.name, r.imp);
    if let Some(b) = r.size {
        s.push_str(&format!(", {}", report::fmt_size(b)));
    }
    s
}

/// The x range: whole powers of ten around every ratio and 1.
fn x_range(panels: &[(String, Vec<Line>)]) -> (f64, f64) {
    let all = panels
        .iter()
        .flat_map(|(_, l)| l)
        .flat_map(|l| [l.os.as_ref(), l.py.as_ref()])
        .flatten()
        .map(|(r, _)| *r)
        .filter(|r| r.is_finite() && *r > 0.0);
    let (lo, hi) = all.fold((1.0f64, 1.0f64), |(lo, hi), r| (lo.min(r), hi.max(r)));
    let lo = 10f64.powf((lo.log10() - 0.3).floor()).max(1e-6);
    let hi = 10f64.powf((hi.log10() + 0.3).ceil()).min(1e6);
    (lo, hi)
}

/// A ratio as a tick label: 0.001x, 0.1x, 1x, 10x, 1000x.
fn tick(x: f64) -> String {
    format!("{}x", report::sig(x, 1))
}

/// Draws the report; `title` and the lines of `subtitle` head the picture.
pub(crate) fn render(
    title: &str,
    subtitle: &[&str],
    panels: &[(String, Vec<Line>)],
) -> Result<String, String> {
    let height = HEADER
        + panels
            .iter()
            .map(|(_, l)| PANEL_EXTRA + LINE * l.len() as u32)
            .sum::<u32>()
            .max(40);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, height)).into_drawing_area();
        draw(&root, title, subtitle, panels).map_err(|e| format!("drawing latest.svg: {e}"))?;
        root.present()
            .map_err(|e| format!("drawing latest.svg: {e}"))?;
    }
    Ok(svg)
}

fn draw(
    root: &DrawingArea<SVGBackend<'_>, Shift>,
    title: &str,
    subtitle: &[&str],
    panels: &[(String, Vec<Line>)],
) -> Result<(), Box<dyn std::error::Error>> {
    root.fill(&WHITE)?;
    root.draw(&Text::new(
        title,
        (12, 8),
        (FONT, 26).into_font().color(&BLACK),
    ))?;
    for (i, line) in subtitle.iter().take(2).enumerate() {
        root.draw(&Text::new(
            *line,
            (12, 36 + 18 * i as i32),
            (FONT, 16).into_font().color(&RGBColor(0x55, 0x55, 0x55)),
        ))?;
    }
    let legend = [
        (
            OS_COLOR,
            "cost ratio to the OS limit (raw syscalls, spin, memcpy, rayon)",
        ),
        (PY_COLOR, "cost ratio to Python's multiprocessing"),
    ];
    let mut x = 12;
    for (color, text) in legend {
        root.draw(&Text::new(
            format!("■ {text}"),
            (x, 76),
            (FONT, 16).into_font().color(&color),
        ))?;
        x += 560;
    }
    if panels.is_empty() {
        return Ok(());
    }
    let (lo, hi) = x_range(panels);
    let (_, mut rest) = root.split_vertically(HEADER);
    for (group, lines) in panels {
        let h = PANEL_EXTRA + LINE * lines.len() as u32;
        let (panel, below) = rest.split_vertically(h);
        rest = below;
        panel_chart(root, &panel, group, lines, lo, hi)?;
    }
    Ok(())
}

fn panel_chart(
    root: &DrawingArea<SVGBackend<'_>, Shift>,
    panel: &DrawingArea<SVGBackend<'_>, Shift>,
    group: &str,
    lines: &[Line],
    lo: f64,
    hi: f64,
) -> Result<(), Box<dyn std::error::Error>> {
    let n = lines.len() as f64;
    let mut chart = ChartBuilder::on(panel)
        .caption(
            format!(
                "{group} ({} row{})",
                lines.len(),
                if lines.len() == 1 { "" } else { "s" }
            ),
            (FONT, 20).into_font().color(&BLACK),
        )
        .margin_left(8)
        .margin_right(24)
        .margin_top(6)
        .margin_bottom(6)
        .x_label_area_size(34)
        .y_label_area_size(LABEL_AREA)
        .build_cartesian_2d((lo..hi).log_scale(), 0f64..n)?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(0)
        .x_label_formatter(&|x| tick(*x))
        .x_desc("cost ratio to the baseline (log scale): left of 1x faster, right slower")
        .label_style((FONT, 14))
        .axis_desc_style((FONT, 14))
        .light_line_style(RGBColor(0xee, 0xee, 0xee))
        .bold_line_style(RGBColor(0xdd, 0xdd, 0xdd))
        .draw()?;
    let (left, _) = chart.backend_coord(&(lo, 0.0));
    let (right, _) = chart.backend_coord(&(hi, 0.0));
    // The baseline itself.
    chart.draw_series(std::iter::once(PathElement::new(
        vec![(1.0, 0.0), (1.0, n)],
        BLACK.stroke_width(1),
    )))?;
    for (i, line) in lines.iter().enumerate() {
        // Line 0 at the top.
        let top = n - i as f64;
        let mid = top - 0.5;
        let (px, py) = chart.backend_coord(&(lo, mid));
        root.draw(&Text::new(
            line.label.clone(),
            (px - 8, py),
            (FONT, 15)
                .into_font()
                .color(&BLACK)
                .pos(Pos::new(HPos::Right, VPos::Center)),
        ))?;
        for (bar, color, y0, y1) in [
            (&line.os, OS_COLOR, top - 0.12, top - 0.48),
            (&line.py, PY_COLOR, top - 0.52, top - 0.88),
        ] {
            let Some((r, text)) = bar else { continue };
            let r = r.clamp(lo, hi);
            chart.draw_series(std::iter::once(Rectangle::new(
                [(1.0, y0), (r, y1)],
                color.filled(),
            )))?;
            // The figure goes beyond the outer end of the bar or, where the bar comes near
            // the edge of the chart, on the other side of the 1x line (the other bar of the
            // line is in the other half of its height).
            let (ex, ey) = chart.backend_coord(&(r, (y0 + y1) / 2.0));
            let (one, _) = chart.backend_coord(&(1.0, 0.0));
            let outward = if r >= 1.0 { 1 } else { -1 };
            let room = if r >= 1.0 { right - ex } else { ex - left };
            let (x, side) = if room > text_width(text) {
                (ex, outward)
            } else {
                (one, -outward)
            };
            let anchor = if side > 0 { HPos::Left } else { HPos::Right };
            root.draw(&Text::new(
                text.clone(),
                (x + 4 * side, ey),
                (FONT, 13)
                    .into_font()
                    .color(&RGBColor(0x33, 0x33, 0x33))
                    .pos(Pos::new(anchor, VPos::Center)),
            ))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(line: &str) -> Row {
        Row::from_line(line).unwrap()
    }

    fn synthetic() -> Vec<Row> {
        [
            r#"{"group":"ipc","key":"ipc/spin/8","name":"round trip","impl":"raw spin","size":8,"unit":"us","p50":0.2}"#,
            r#"{"group":"ipc","key":"ipc/futex/8","name":"round trip","impl":"raw futex","size":8,"unit":"us","p50":11,"baseline":["ipc/spin/8"]}"#,
            r#"{"group":"ipc","key":"ipc/py-pipe/8","name":"round trip","impl":"python Pipe","size":8,"unit":"us","p50":36,"source":"python/ipc.py"}"#,
            r#"{"group":"ipc","key":"ipc/mp/8","name":"round trip","impl":"mp Pipe","size":8,"unit":"us","p50":0.3,"baseline":["ipc/spin/8","ipc/futex/8","ipc/py-pipe/8"]}"#,
            r#"{"group":"ipc","key":"ipc/mp-nospin/8","name":"round trip","impl":"mp Pipe (no spin)","size":8,"unit":"us","p50":12,"baseline":["ipc/futex/8"]}"#,
            r#"{"group":"ipc","key":"ipc/mp-q/8","name":"round trip","impl":"mp Queue<Bytes> & co","size":8,"unit":"us","p50":0.5,"baseline":["ipc/mp/8","ipc/py-pipe/8"]}"#,
            r#"{"group":"lock","key":"lock/cas","name":"acquire","impl":"raw CAS","unit":"ns","p50":9.5}"#,
            r#"{"group":"lock","key":"lock/std","name":"acquire","impl":"std Mutex","unit":"ns","p50":11,"baseline":["lock/cas"]}"#,
            r#"{"group":"lock","key":"lock/py","name":"acquire","impl":"python Lock","unit":"ns","p50":178,"source":"python/lock.py","baseline":["lock/cas"]}"#,
            r#"{"group":"lock","key":"lock/mp","name":"acquire","impl":"mp Lock","unit":"ns","p50":15.8,"baseline":["lock/cas","lock/py","lock/missing"]}"#,
            r#"{"group":"pool","key":"pool/rayon","name":"map","impl":"rayon","unit":"ms","p50":0.04}"#,
        ]
        .iter()
        .map(|l| row(l))
        .collect()
    }

    #[test]
    fn panels_pick_the_first_os_limit_and_python_baseline_of_each_row() {
        let rows = synthetic();
        let p = panels(&rows, &report::ratios(&rows));
        let groups: Vec<&str> = p.iter().map(|(g, _)| g.as_str()).collect();
        // pool has no row with a baseline: no panel.
        assert_eq!(groups, ["ipc", "lock"]);
        let ipc = &p[0].1;
        assert_eq!(ipc.len(), 3);
        assert_eq!(ipc[0].label, "round trip: mp Pipe, 8 B");
        let close =
            |x: Option<&(f64, String)>, y: f64| x.is_some_and(|(x, _)| (x - y).abs() < 1e-9);
        assert!(close(ipc[0].os.as_ref(), 1.5), "{:?}", ipc[0]);
        assert!(close(ipc[0].py.as_ref(), 0.3 / 36.0));
        assert!(close(ipc[1].os.as_ref(), 12.0 / 11.0));
        assert_eq!(ipc[1].py, None);
        // mp Queue's first baseline is another project row: only the Python bar.
        assert_eq!(ipc[2].os, None);
        assert!(close(ipc[2].py.as_ref(), 0.5 / 36.0));
        assert_eq!(ipc[2].py.as_ref().unwrap().1, "72x faster than python Pipe");
        let lock = &p[1].1;
        assert_eq!(
            lock.len(),
            1,
            "Python and std rows are baselines, not lines"
        );
    }

    /// The text of every `<text>` element.
    fn texts(svg: &str) -> Vec<String> {
        svg.split("<text")
            .skip(1)
            .filter_map(|t| {
                let body = t.split_once('>')?.1;
                let raw = body.split_once("</text>")?.0.trim();
                Some(
                    raw.replace("&lt;", "<")
                        .replace("&gt;", ">")
                        .replace("&apos;", "'")
                        .replace("&quot;", "\"")
                        .replace("&amp;", "&"),
                )
            })
            .collect()
    }

    /// `<rect>`s filled with `color`.
    fn bars(svg: &str, color: RGBColor) -> usize {
        let fill = format!("fill=\"#{:02X}{:02X}{:02X}\"", color.0, color.1, color.2);
        svg.split("<rect")
            .skip(1)
            .filter(|r| {
                r.split_once("/>")
                    .map_or(r.as_ref(), |(a, _)| a)
                    .contains(&fill)
            })
            .count()
    }

    #[test]
    fn the_svg_has_one_panel_per_group_and_one_bar_per_ratio() {
        let rows = synthetic();
        let p = panels(&rows, &report::ratios(&rows));
        let svg = render("title here", &["subtitle", "line 2"], &p).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..100]);
        assert!(svg.trim_end().ends_with("</svg>"));
        let t = texts(&svg);
        let captions: Vec<&String> = t
            .iter()
            .filter(|s| s.ends_with(" rows)") || s.ends_with(" row)"))
            .collect();
        assert_eq!(captions, ["ipc (3 rows)", "lock (1 row)"]);
        // One label per line, one bar per ratio drawn, in each color.
        for l in p.iter().flat_map(|(_, l)| l) {
            assert_eq!(
                t.iter().filter(|s| **s == l.label).count(),
                1,
                "{}",
                l.label
            );
        }
        assert_eq!(bars(&svg, OS_COLOR), 3, "{svg}");
        assert_eq!(bars(&svg, PY_COLOR), 3);
        assert!(t.iter().any(|s| s == "1.5x slower than raw spin"), "{t:?}");
        assert!(t.iter().any(|s| s == "1x"), "{t:?}");
        assert!(t.contains(&"title here".to_owned()));
        assert!(t.contains(&"line 2".to_owned()));
        // Text is escaped: the SVG stays well-formed with `<` and `&` in row names.
        assert!(svg.contains("mp Queue&lt;Bytes&gt; &amp; co"), "{svg}");
    }

    #[test]
    fn an_empty_report_is_still_a_picture() {
        let svg = render("t", &["s"], &[]).unwrap();
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert_eq!(bars(&svg, OS_COLOR), 0);
    }
}
