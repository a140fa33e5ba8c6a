//! Small, dependency-free SVG charts for the HTML report: lines over time with marked moments, and
//! bars. Output is XML-safe text meant to be inlined into the page.

use std::fmt::Write as _;

/// One line of a chart.
pub struct Line<'a> {
    /// Legend label.
    pub label: &'a str,
    /// CSS colour.
    pub color: &'a str,
    /// (x, y) points, x ascending.
    pub points: Vec<(f64, f64)>,
}

/// A moment or span to mark on the x axis (a fault, a defragmentation).
pub struct Mark {
    /// Where it starts, in x units.
    pub x: f64,
    /// Where it ends, when it lasts (shaded up to the chart's edge).
    pub end: Option<f64>,
    /// Its label.
    pub label: String,
}

/// Width of one character of a 10 px label, in viewBox units (generous: wide letters and digits).
pub(super) const CHAR_W: f64 = 6.5;
/// Height of a row of 10 px labels: a text box is about 12 high (ascent and descent).
const ROW_H: f64 = 13.0;

/// Where a mark's label goes: its row, and whether it ends at the mark (near the right edge)
/// instead of starting there.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Placed {
    /// Row, from 0 (the top).
    pub row: usize,
    /// Drawn leftwards from the mark (`text-anchor: end`), so it is not clipped at the right.
    pub leftwards: bool,
}

/// Label places for marks sorted by x: each on the first of `rows` rows where its box does not
/// meet another label's; leftwards when it would cross `right`; `None` when no row has room (the
/// mark keeps its tooltip: labels never overlap).
pub(super) fn place_labels(
    starts: &[(f64, usize)],
    right: f64,
    rows: usize,
) -> Vec<Option<Placed>> {
    let mut taken: Vec<Vec<(f64, f64)>> = vec![Vec::new(); rows];
    starts
        .iter()
        .map(|&(x, chars)| {
            let w = CHAR_W * chars as f64 + 6.0;
            let leftwards = x + w > right;
            let (a, b) = if leftwards { (x - w, x) } else { (x, x + w) };
            let row = taken
                .iter()
                .position(|r| r.iter().all(|&(l, h)| b <= l || h <= a))?;
            taken[row].push((a, b));
            Some(Placed { row, leftwards })
        })
        .collect()
}

/// Chart width (viewBox units); the timeline's charts share it, so their x axes line up.
pub(super) const W: f64 = 640.0;
const H: f64 = 220.0;
/// Left margin (y ticks); the timeline's lanes start here too.
pub(super) const LEFT: f64 = 56.0;
/// Right margin.
pub(super) const RIGHT: f64 = 12.0;
const TOP: f64 = 24.0;
const BOTTOM: f64 = 34.0;

/// Escapes text for XML.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A readable number for an axis tick.
fn tick(v: f64) -> String {
    if v.abs() >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if v.abs() >= 1e4 {
        format!("{:.0}k", v / 1e3)
    } else if v.abs() >= 100.0 || v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

/// The y position of `y` on a chart `h` high whose axis tops out at `y1`.
fn y_pos(y: f64, y1: f64, h: f64) -> f64 {
    TOP + (1.0 - y / y1) * (h - TOP - BOTTOM)
}

/// `y` rounded up to the next round tick, so the axis ends on a labelled line.
fn round_up(y: f64) -> f64 {
    let t = nice_ticks(0.0, y);
    let step = t.get(1).copied().unwrap_or(y);
    match t.last() {
        Some(last) if *last >= y => *last,
        Some(last) => last + step,
        None => y,
    }
}

/// Round tick values from `x0` to `x1`: steps of 1, 2 or 5 times a power of ten, four or so.
pub(super) fn nice_ticks(x0: f64, x1: f64) -> Vec<f64> {
    let span = (x1 - x0).max(1e-9);
    let raw = span / 4.0;
    let p = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * p)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * p);
    let mut t = (x0 / step).ceil() * step;
    let mut out = Vec::new();
    while t <= x1 + step * 1e-9 {
        out.push(t);
        t += step;
    }
    out
}

/// Horizontal grid lines and y tick labels at round values up to `y1`.
fn y_grid(s: &mut String, y1: f64, h: f64) {
    for y in nice_ticks(0.0, y1) {
        let _ = write!(
            s,
            r#"<line x1="{LEFT}" x2="{}" y1="{p:.1}" y2="{p:.1}" class="grid"/><text x="{}" y="{:.1}" class="tk" text-anchor="end">{}</text>"#,
            W - RIGHT,
            LEFT - 4.0,
            y_pos(y, y1, h) + 4.0,
            tick(y),
            p = y_pos(y, y1, h)
        );
    }
}

/// A line chart: `title`, axis labels, lines and marks. Empty lines give a "no data" chart.
pub fn lines(
    title: &str,
    x_label: &str,
    y_label: &str,
    lines: &[Line<'_>],
    marks: &[Mark],
) -> String {
    chart(title, x_label, y_label, lines, marks, None, H)
}

/// [`lines`] over a given x range (charts stacked on one time axis; `None`: the data's own), `h`
/// high (the timeline's are flatter).
pub fn chart(
    title: &str,
    x_label: &str,
    y_label: &str,
    lines: &[Line<'_>],
    marks: &[Mark],
    x_range: Option<(f64, f64)>,
    h: f64,
) -> String {
    // Values over more than a decade and a half (a 22k/s prefill beside 200/s phases) go on a
    // log axis, or the small ones would read as zero.
    let log = wide(lines);
    let scale = Scale {
        log_y: log,
        x_tick: tick,
    };
    let y_label = if log {
        format!("{y_label} (log scale)")
    } else {
        y_label.to_string()
    };
    chart_with(title, x_label, &y_label, lines, marks, x_range, h, &scale)
}

/// The same lines with each point moved by `f` (`None`: left out).
fn remapped<'a>(lines: &[Line<'a>], f: impl Fn((f64, f64)) -> Option<(f64, f64)>) -> Vec<Line<'a>> {
    lines
        .iter()
        .map(|l| Line {
            label: l.label,
            color: l.color,
            points: l.points.iter().copied().filter_map(&f).collect(),
        })
        .collect()
}

/// Whether the positive values of `lines` span more than a factor of 30.
fn wide(lines: &[Line<'_>]) -> bool {
    positive_range(lines).is_some_and(|(lo, hi)| hi / lo > 30.0)
}

/// The smallest and largest positive y of `lines` (`None`: none is positive).
fn positive_range(lines: &[Line<'_>]) -> Option<(f64, f64)> {
    lines
        .iter()
        .flat_map(|l| l.points.iter().map(|p| p.1))
        .filter(|v| *v > 0.0)
        .fold(None, |r, v| {
            Some(r.map_or((v, v), |(a, b): (f64, f64)| (a.min(v), b.max(v))))
        })
}

/// How a chart's axes read.
struct Scale {
    /// The y axis is logarithmic (decades labelled).
    log_y: bool,
    /// An x tick's label.
    x_tick: fn(f64) -> String,
}

#[allow(clippy::too_many_arguments)]
fn chart_with(
    title: &str,
    x_label: &str,
    y_label: &str,
    lines: &[Line<'_>],
    marks: &[Mark],
    x_range: Option<(f64, f64)>,
    h: f64,
    scale: &Scale,
) -> String {
    // On a log axis every value is its decade's logarithm, from a floor of the decade below the
    // smallest positive value (zeros sit on the floor).
    let l0 = positive_range(lines).map_or(0.0, |(lo, _)| lo.log10().floor());
    let transformed = remapped(lines, |(x, y)| {
        Some(if scale.log_y {
            (x, (y.max(10f64.powf(l0)).log10() - l0).max(0.0))
        } else {
            (x, y)
        })
    });
    let lines = &transformed[..];
    let pts = lines.iter().flat_map(|l| l.points.iter());
    let (mut x0, mut x1, mut y1) = (f64::MAX, f64::MIN, 0.0f64);
    for &(x, y) in pts {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y1 = y1.max(y);
    }
    for m in marks {
        x0 = x0.min(m.x);
        x1 = x1.max(m.x);
    }
    if let Some((a, b)) = x_range {
        (x0, x1) = (a, b);
    }
    if x0 > x1 {
        (x0, x1) = (0.0, 1.0);
    }
    if x1 - x0 < 1e-9 {
        x1 = x0 + 1.0;
    }
    if y1 <= 0.0 {
        y1 = 1.0;
    }
    y1 = if scale.log_y {
        y1.ceil().max(1.0)
    } else {
        round_up(y1 * 1.05)
    };
    let px = |x: f64| LEFT + (x - x0) / (x1 - x0) * (W - LEFT - RIGHT);
    let py = |y: f64| y_pos(y, y1, h);
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {W} {h}" role="img" aria-label="{t}"><title>{t}</title>"#,
        t = esc(title)
    );
    let _ = write!(
        s,
        r#"<text x="{LEFT}" y="15" class="ct">{}</text>"#,
        esc(title)
    );
    if scale.log_y {
        // A grid line per decade, labelled with its value.
        for d in 0..=(y1 as i64) {
            let _ = write!(
                s,
                r#"<line x1="{LEFT}" x2="{}" y1="{p:.1}" y2="{p:.1}" class="grid"/><text x="{}" y="{:.1}" class="tk" text-anchor="end">{}</text>"#,
                W - RIGHT,
                LEFT - 4.0,
                y_pos(d as f64, y1, h) + 4.0,
                tick(10f64.powf(l0 + d as f64)),
                p = y_pos(d as f64, y1, h)
            );
        }
    } else {
        y_grid(&mut s, y1, h);
    }
    for x in nice_ticks(x0, x1) {
        let _ = write!(
            s,
            r#"<text x="{:.1}" y="{}" class="tk" text-anchor="middle">{}</text>"#,
            px(x),
            h - BOTTOM + 14.0,
            (scale.x_tick)(x)
        );
    }
    let _ = write!(
        s,
        r#"<text x="{}" y="{}" class="tk ax ax-x" text-anchor="middle">{}</text><text x="12" y="{}" class="tk ax ax-y" transform="rotate(-90 12 {})" text-anchor="middle">{}</text>"#,
        (LEFT + W - RIGHT) / 2.0,
        h - 4.0,
        esc(x_label),
        (TOP + h - BOTTOM) / 2.0,
        (TOP + h - BOTTOM) / 2.0,
        esc(y_label)
    );
    let mut sorted: Vec<&Mark> = marks.iter().collect();
    sorted.sort_by(|a, b| a.x.total_cmp(&b.x));
    let starts: Vec<(f64, usize)> = sorted
        .iter()
        .map(|m| (px(m.x), m.label.chars().count()))
        .collect();
    // As many label rows as fit in the plot's upper half.
    let rows = (((h - TOP - BOTTOM) / 2.0 - 20.0) / ROW_H).floor().max(1.0) as usize;
    for (m, place) in sorted.iter().zip(place_labels(&starts, W - RIGHT, rows)) {
        if let Some(end) = m.end.map(|e| e.min(x1)).filter(|e| *e > m.x) {
            let _ = write!(
                s,
                r#"<rect x="{:.1}" y="{TOP}" width="{:.1}" height="{}" class="span"/>"#,
                px(m.x),
                px(end) - px(m.x),
                h - TOP - BOTTOM
            );
        }
        let _ = write!(
            s,
            r#"<line x1="{x:.1}" x2="{x:.1}" y1="{TOP}" y2="{}" class="mark"><title>{}</title></line>"#,
            h - BOTTOM,
            esc(&m.label),
            x = px(m.x)
        );
        if let Some(p) = place {
            let (lx, anchor) = if p.leftwards {
                (px(m.x) - 3.0, "end")
            } else {
                (px(m.x) + 3.0, "start")
            };
            let _ = write!(
                s,
                r#"<text x="{lx:.1}" y="{}" class="mk" text-anchor="{anchor}">{}</text>"#,
                TOP + 20.0 + ROW_H * p.row as f64,
                esc(&m.label),
            );
        }
    }
    // Only lines with points are drawn, and only drawn lines are in the legend.
    let drawn: Vec<&Line<'_>> = lines.iter().filter(|l| !l.points.is_empty()).collect();
    for (i, l) in drawn.iter().enumerate() {
        let d: Vec<String> = l
            .points
            .iter()
            .map(|&(x, y)| format!("{:.1},{:.1}", px(x), py(y)))
            .collect();
        let _ = write!(
            s,
            r#"<polyline points="{}" fill="none" stroke="{}" stroke-width="1.6"/>"#,
            d.join(" "),
            esc(l.color)
        );
        let lx = LEFT + 8.0 + 110.0 * i as f64;
        let _ = write!(
            s,
            r#"<rect x="{lx}" y="{}" width="10" height="3" fill="{}"/><text x="{}" y="{}" class="tk">{}</text>"#,
            TOP + 2.0,
            esc(l.color),
            lx + 14.0,
            TOP + 6.0,
            esc(l.label)
        );
    }
    if lines.iter().all(|l| l.points.is_empty()) {
        let _ = write!(
            s,
            r#"<text x="{}" y="{}" class="tk" text-anchor="middle">no data</text>"#,
            W / 2.0,
            h / 2.0
        );
    }
    s.push_str("</svg>");
    s
}

/// Latency percentile curves as HdrHistogram plots them: the percentile on a log scale of
/// `1/(1−q)` (1 is 90%, 2 is 99%, 3 is 99.9%, 4 is 99.99%), the latency up. Each line's points
/// are `(q, ms)` with `q < 1`.
pub fn percentiles(title: &str, curves: &[Line<'_>]) -> String {
    let logx = remapped(curves, |(q, v)| {
        (q < 1.0).then(|| ((1.0 / (1.0 - q)).log10().min(4.0), v))
    });
    chart_with(
        title,
        "percentile (%, log scale of 1/(1 − q))",
        "latency (ms, log scale)",
        &logx,
        &[],
        Some((0.0, 4.0)),
        H,
        &Scale {
            log_y: true,
            x_tick: percentile_tick,
        },
    )
}

/// A tick of the percentile axis: `0` is 0%, `1` 90%, `2` 99%, `3` 99.9%, `4` 99.99%.
fn percentile_tick(x: f64) -> String {
    let q = 1.0 - 10f64.powf(-x);
    format!("{}%", crate::units::format_number(q * 100.0))
}

/// A bar chart of labelled values (percentiles, sizes per step).
pub fn bars(title: &str, y_label: &str, values: &[(String, f64)], color: &str) -> String {
    let y1 = round_up(values.iter().map(|v| v.1).fold(0.0f64, f64::max).max(1e-9) * 1.05);
    let n = values.len().max(1) as f64;
    let slot = (W - LEFT - RIGHT) / n;
    let py = |y: f64| y_pos(y, y1, H);
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {W} {H}" role="img" aria-label="{t}"><title>{t}</title><text x="{LEFT}" y="15" class="ct">{t}</text>"#,
        t = esc(title)
    );
    y_grid(&mut s, y1, H);
    let _ = write!(
        s,
        r#"<text x="12" y="{c}" class="tk ax ax-y" transform="rotate(-90 12 {c})" text-anchor="middle">{}</text>"#,
        esc(y_label),
        c = (TOP + H - BOTTOM) / 2.0
    );
    for (i, (label, v)) in values.iter().enumerate() {
        let x = LEFT + slot * i as f64 + slot * 0.15;
        let _ = write!(
            s,
            r#"<rect x="{x:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{}"><title>{}: {}</title></rect><text x="{:.1}" y="{}" class="tk" text-anchor="middle">{}</text>"#,
            py(*v),
            slot * 0.7,
            (H - BOTTOM) - py(*v),
            esc(color),
            esc(label),
            tick(*v),
            x + slot * 0.35,
            H - BOTTOM + 14.0,
            esc(label)
        );
    }
    s.push_str("</svg>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_are_well_formed_xml_with_escaped_text() {
        let svg = lines(
            "p99 <ms>",
            "s",
            "ms",
            &[Line {
                label: "p99 & max",
                color: "#c33",
                points: vec![(0.0, 1.0), (1.0, 3.0)],
            }],
            &[Mark {
                x: 0.5,
                end: Some(9.0),
                label: "kill \"leader\"".into(),
            }],
        );
        assert!(svg.contains("p99 &lt;ms&gt;") && svg.contains("kill &quot;leader&quot;"));
        assert!(svg.contains("<polyline"));
        // The span is shaded from its start to the chart's right edge, not beyond.
        let span = svg.split(r#"class="span""#).next().unwrap();
        let width: f64 = span
            .rsplit("width=\"")
            .next()
            .unwrap()
            .split('"')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!((width - (W - LEFT - RIGHT) / 2.0).abs() < 0.2, "{width}");
        let b = bars(
            "sizes",
            "MiB",
            &[("before".into(), 2.0), ("after".into(), 1.0)],
            "#36c",
        );
        assert_eq!(b.matches("<rect").count(), 2);
        assert!(lines("empty", "s", "", &[], &[]).contains("no data"));
    }

    #[test]
    fn close_labels_go_on_separate_rows_and_far_ones_share_one() {
        let rows = |starts: &[(f64, usize)]| -> Vec<Option<usize>> {
            place_labels(starts, 600.0, 4)
                .into_iter()
                .map(|p| p.map(|p| p.row))
                .collect()
        };
        // "compact" at 100 px reaches to 100 + 7·6.5 + 6 = 151.5 px.
        assert_eq!(
            rows(&[(100.0, 7), (120.0, 6), (155.0, 6)]),
            vec![Some(0), Some(1), Some(0)]
        );
        assert_eq!(rows(&[(10.0, 3), (400.0, 3)]), vec![Some(0), Some(0)]);
        // Near the right edge a label reads leftwards, and is not clipped.
        let p = place_labels(&[(590.0, 10)], 600.0, 4);
        assert_eq!(
            p,
            vec![Some(Placed {
                row: 0,
                leftwards: true
            })]
        );
        // More close labels than rows: the rest keep only their tooltip, never overlapping.
        let many: Vec<(f64, usize)> = (0..6).map(|i| (100.0 + i as f64, 8)).collect();
        let placed = rows(&many);
        assert_eq!(placed.iter().filter(|p| p.is_some()).count(), 4);
    }
}
