//! Charts as SVG, drawn on the server: a bar per minute of the last hour.
//! Only numbers reach the SVG text; labels are this module's own.

use std::fmt::Write as _;

use crate::store::ui::MinutePoint;

const W: f64 = 600.0;
const H: f64 = 140.0;
const LEFT: f64 = 48.0;
const BOTTOM: f64 = 20.0;
const TOP: f64 = 8.0;

/// A bar chart of `minutes` bars ending at `last_minute` (minutes since
/// the epoch); minutes without a point are 0. `max_marks` draws each
/// point's `max` as a tick above its bar (for latency: mean bar, worst
/// tick). `fmt` writes an axis value.
pub fn per_minute(
    points: &[MinutePoint],
    last_minute: i64,
    minutes: i64,
    label: &str,
    max_marks: bool,
    fmt: fn(i64) -> String,
) -> String {
    let first = last_minute - minutes + 1;
    let mut values = vec![(0i64, 0i64); minutes as usize];
    for p in points {
        if (first..=last_minute).contains(&p.minute) {
            values[(p.minute - first) as usize] = (p.value, p.max);
        }
    }
    let top = values
        .iter()
        .map(|&(v, m)| if max_marks { v.max(m) } else { v })
        .max()
        .unwrap_or(0)
        .max(1);
    let plot_w = W - LEFT - 4.0;
    let plot_h = H - BOTTOM - TOP;
    let bar_w = plot_w / minutes as f64;
    let y = |v: i64| TOP + plot_h - (v as f64 / top as f64) * plot_h;
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg class="chart" viewBox="0 0 {W} {H}" role="img" aria-label="{label}"><title>{label}</title>"#
    );
    // Axis: the top value, half of it and zero.
    for v in [top, top / 2, 0] {
        let _ = write!(
            s,
            r#"<line class="grid" x1="{LEFT}" x2="{}" y1="{y:.1}" y2="{y:.1}"/><text class="axis" x="{}" y="{:.1}" text-anchor="end">{}</text>"#,
            W - 4.0,
            LEFT - 4.0,
            y(v) + 4.0,
            fmt(v),
            y = y(v),
        );
    }
    for (i, &(v, m)) in values.iter().enumerate() {
        let x = LEFT + i as f64 * bar_w;
        let minute = first + i as i64;
        let at = chrono::DateTime::from_timestamp(minute * 60, 0)
            .map(|t| t.format("%H:%M").to_string())
            .unwrap_or_default();
        if v > 0 {
            let _ = write!(
                s,
                r#"<rect class="bar" x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}"><title>{at} UTC: {}</title></rect>"#,
                x + 0.5,
                y(v),
                (bar_w - 1.0).max(0.5),
                TOP + plot_h - y(v),
                fmt(v),
            );
        }
        if max_marks && m > 0 {
            let _ = write!(
                s,
                r#"<line class="worst" x1="{:.1}" x2="{:.1}" y1="{y:.1}" y2="{y:.1}"><title>{at} UTC worst: {}</title></line>"#,
                x + 0.5,
                x + bar_w - 0.5,
                fmt(m),
                y = y(m),
            );
        }
    }
    for (i, tag) in [
        (0, "-60 min"),
        (minutes / 2, "-30 min"),
        (minutes - 1, "now"),
    ] {
        let _ = write!(
            s,
            r#"<text class="axis" x="{:.1}" y="{}" text-anchor="middle">{tag}</text>"#,
            LEFT + (i as f64 + 0.5) * bar_w,
            H - 4.0
        );
    }
    s.push_str("</svg>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(n: i64) -> String {
        n.to_string()
    }

    #[test]
    fn one_bar_per_minute_with_a_value() {
        let points = [
            MinutePoint {
                minute: 100,
                value: 3,
                max: 3,
            },
            MinutePoint {
                minute: 159,
                value: 6,
                max: 6,
            },
            // Outside the window: not drawn.
            MinutePoint {
                minute: 20,
                value: 50,
                max: 50,
            },
        ];
        let svg = per_minute(&points, 159, 60, "finished", false, count);
        assert_eq!(svg.matches("<rect").count(), 2);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        // The axis tops at the biggest value in the window.
        assert!(svg.contains(">6</text>"));
        assert!(!svg.contains(">50<"));
    }

    #[test]
    fn worst_marks_are_drawn_when_asked() {
        let points = [MinutePoint {
            minute: 10,
            value: 100,
            max: 400,
        }];
        let svg = per_minute(&points, 10, 60, "latency", true, count);
        assert_eq!(svg.matches(r#"class="worst""#).count(), 1);
        assert!(svg.contains(">400</text>"));
    }
}
