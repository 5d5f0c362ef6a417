//! Charts as SVG text, drawn with plotters' SVG backend: line and point
//! series over linear or logarithmic axes ([`xy_chart`]) and a lane chart
//! of spans and marks, one lane per row ([`lane_chart`]).
//!
//! Callers hand in plain figures and get back an `<svg>` element they can
//! put into a page or a file; nothing here knows about trials or sweeps.
//! Colours come from one palette ([`PALETTE`]), chosen to stay apart for
//! readers with colour-blindness (Okabe and Ito's set).

pub mod sweep;

use std::ops::Range;

use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::coord::Shift;
use plotters::prelude::*;

/// Colours for series, in the order series take them.
pub const PALETTE: [RGBColor; 7] = [
    RGBColor(0x00, 0x72, 0xB2), // blue
    RGBColor(0xE6, 0x9F, 0x00), // orange
    RGBColor(0x00, 0x9E, 0x73), // green
    RGBColor(0xD5, 0x5E, 0x00), // vermillion
    RGBColor(0xCC, 0x79, 0xA7), // purple
    RGBColor(0x56, 0xB4, 0xE9), // sky blue
    RGBColor(0x00, 0x00, 0x00), // black
];

/// A chart could not be drawn.
#[derive(Debug, thiserror::Error)]
#[error("cannot draw the chart {title:?}: {message}")]
pub struct PlotError {
    /// The chart.
    pub title: String,
    /// The drawing library's complaint.
    pub message: String,
}

/// How a series is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    /// Points joined by a line.
    Line,
    /// Points joined by a line, each point also drawn.
    LinePoints,
    /// Points joined by a dashed line, each point also drawn.
    DashedPoints,
    /// Points only (a scatter).
    Points,
    /// A horizontal dashed rule at the first point's y, across the chart.
    Rule,
}

/// One named series.
#[derive(Debug, Clone)]
pub struct Series {
    /// Its name in the legend.
    pub label: String,
    /// Its colour.
    pub color: RGBColor,
    /// How it is drawn.
    pub mark: Mark,
    /// Its points, (x, y).
    pub points: Vec<(f64, f64)>,
}

/// An axis: its description and whether it is logarithmic.
#[derive(Debug, Clone)]
pub struct Axis {
    /// The axis description.
    pub label: String,
    /// Logarithmic (base 10 ticks) instead of linear.
    pub log: bool,
}

impl Axis {
    /// A linear axis.
    pub fn linear(label: &str) -> Axis {
        Axis {
            label: label.to_string(),
            log: false,
        }
    }

    /// A logarithmic axis.
    pub fn log(label: &str) -> Axis {
        Axis {
            label: label.to_string(),
            log: true,
        }
    }
}

/// Where a chart's legend goes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LegendAt {
    /// The upper right corner (series that fall or stay flat).
    #[default]
    UpperRight,
    /// The upper left corner (series that rise to the right).
    UpperLeft,
    /// The lower right corner (series that stay high).
    LowerRight,
}

/// A chart's frame.
#[derive(Debug, Clone)]
pub struct Frame {
    /// The caption above the chart.
    pub title: String,
    /// Size in pixels.
    pub size: (u32, u32),
    /// The horizontal axis.
    pub x: Axis,
    /// The vertical axis.
    pub y: Axis,
    /// Where the legend goes.
    pub legend: LegendAt,
}

fn fail(title: &str) -> impl Fn(String) -> PlotError + '_ {
    move |message| PlotError {
        title: title.to_string(),
        message,
    }
}

/// The range a set of values needs: from 0 (or, on a log axis, just below
/// the smallest positive value) to a little above the largest.
fn span(values: impl Iterator<Item = f64> + Clone, log: bool) -> Range<f64> {
    let finite = values.filter(|v| v.is_finite() && (!log || *v > 0.0));
    let max = finite.clone().fold(f64::NAN, f64::max);
    let min = finite.fold(f64::NAN, f64::min);
    if max.is_nan() {
        return if log { 1.0..10.0 } else { 0.0..1.0 };
    }
    if log {
        // At least a decade, so that a labelled tick always shows.
        let lo = (min / 1.25).min(10f64.powf(min.log10().floor()));
        let hi = (max * 1.25).max(lo * 10.0);
        lo..hi
    } else {
        let lo = min.min(0.0);
        let hi = if max > lo { max * 1.05 } else { lo + 1.0 };
        lo..hi
    }
}

/// Draws `series` in a chart framed by `frame`, with a legend when any
/// series has a label. Points that cannot go on a log axis (≤ 0) are left
/// out.
pub fn xy_chart(frame: &Frame, series: &[Series]) -> Result<String, PlotError> {
    let err = fail(&frame.title);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, frame.size).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
        draw_panel(&root, frame, series).map_err(&err)?;
        root.present().map_err(|e| err(e.to_string()))?;
    }
    Ok(svg)
}

/// Draws several charts in one SVG: a `title` on top, then the panels
/// left to right, `columns` per row, each `panel_size` pixels.
pub fn xy_grid(
    title: &str,
    panel_size: (u32, u32),
    columns: usize,
    panels: &[(Frame, Vec<Series>)],
) -> Result<String, PlotError> {
    let err = fail(title);
    let columns = columns.max(1);
    let rows = panels.len().div_ceil(columns).max(1);
    let size = (
        panel_size.0 * columns as u32,
        panel_size.1 * rows as u32 + 40,
    );
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
        let body = root
            .titled(title, ("sans-serif", 20))
            .map_err(|e| err(e.to_string()))?;
        let areas = body.split_evenly((rows, columns));
        for (area, (frame, series)) in areas.iter().zip(panels) {
            draw_panel(area, frame, series).map_err(&err)?;
        }
        root.present().map_err(|e| err(e.to_string()))?;
    }
    Ok(svg)
}

/// One chart on `area`, its axes fitted to the series.
fn draw_panel(
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    frame: &Frame,
    series: &[Series],
) -> Result<(), String> {
    let xs = series.iter().flat_map(|s| s.points.iter().map(|p| p.0));
    let ys = series.iter().flat_map(|s| s.points.iter().map(|p| p.1));
    let x = span(xs, frame.x.log);
    let y = span(ys, frame.y.log);
    match (frame.x.log, frame.y.log) {
        (false, false) => draw_xy(area, frame, series, x, y),
        (false, true) => draw_xy(area, frame, series, x, y.log_scale()),
        (true, false) => draw_xy(area, frame, series, x.log_scale(), y),
        (true, true) => draw_xy(area, frame, series, x.log_scale(), y.log_scale()),
    }
}

fn draw_xy<X, Y>(
    root: &DrawingArea<SVGBackend<'_>, Shift>,
    frame: &Frame,
    series: &[Series],
    x: X,
    y: Y,
) -> Result<(), String>
where
    X: AsRangedCoord<Value = f64>,
    Y: AsRangedCoord<Value = f64>,
    X::CoordDescType: ValueFormatter<f64>,
    Y::CoordDescType: ValueFormatter<f64>,
{
    let e = |e: DrawingAreaErrorKind<_>| e.to_string();
    let mut chart = ChartBuilder::on(root)
        .caption(&frame.title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(64)
        .build_cartesian_2d(x, y)
        .map_err(e)?;
    chart
        .configure_mesh()
        .x_desc(frame.x.label.as_str())
        .y_desc(frame.y.label.as_str())
        .x_labels(8)
        .y_labels(6)
        .x_label_formatter(&|v| tick(*v))
        .y_label_formatter(&|v| tick(*v))
        .label_style(("sans-serif", 12))
        .axis_desc_style(("sans-serif", 13))
        .light_line_style(RGBColor(0xF0, 0xF0, 0xF0))
        .draw()
        .map_err(e)?;
    let x_range = chart.x_range();
    let fits = |p: &&(f64, f64)| {
        p.0.is_finite()
            && p.1.is_finite()
            && (!frame.x.log || p.0 > 0.0)
            && (!frame.y.log || p.1 > 0.0)
    };
    let mut labelled = false;
    for s in series {
        let color = s.color;
        let points: Vec<(f64, f64)> = s.points.iter().filter(fits).copied().collect();
        let drawn = match s.mark {
            Mark::Line => chart.draw_series(LineSeries::new(points, color.stroke_width(2))),
            Mark::LinePoints => {
                chart.draw_series(LineSeries::new(points, color.stroke_width(2)).point_size(3))
            }
            Mark::DashedPoints => {
                chart
                    .draw_series(points.iter().map(|&p| Circle::new(p, 3, color.filled())))
                    .map_err(e)?;
                chart.draw_series(DashedLineSeries::new(points, 6, 4, color.stroke_width(2)))
            }
            Mark::Points => chart.draw_series(
                points
                    .into_iter()
                    .map(|p| Circle::new(p, 2, color.mix(0.6).filled())),
            ),
            Mark::Rule => {
                let Some(&(_, level)) = points.first() else {
                    continue;
                };
                chart.draw_series(DashedLineSeries::new(
                    [(x_range.start, level), (x_range.end, level)],
                    6,
                    4,
                    color.stroke_width(2),
                ))
            }
        }
        .map_err(e)?;
        if !s.label.is_empty() {
            labelled = true;
            let dashed = matches!(s.mark, Mark::DashedPoints | Mark::Rule);
            drawn.label(s.label.as_str()).legend(move |(x, y)| {
                let style = color.stroke_width(3);
                let (a, b) = if dashed { (7, 11) } else { (9, 9) };
                EmptyElement::at((x, y))
                    + PathElement::new(vec![(0, 0), (a, 0)], style)
                    + PathElement::new(vec![(b, 0), (18, 0)], style)
            });
        }
    }
    if labelled {
        chart
            .configure_series_labels()
            .position(match frame.legend {
                LegendAt::UpperRight => SeriesLabelPosition::UpperRight,
                LegendAt::UpperLeft => SeriesLabelPosition::UpperLeft,
                LegendAt::LowerRight => SeriesLabelPosition::LowerRight,
            })
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(0xBB, 0xBB, 0xBB))
            .label_font(("sans-serif", 12))
            .draw()
            .map_err(e)?;
    }
    Ok(())
}

/// A tick label: whole numbers without decimals, small ones with enough.
fn tick(v: f64) -> String {
    let whole = (v - v.round()).abs() < 1e-9 * v.abs().max(1.0);
    if whole || v.abs() >= 10.0 {
        format!("{v:.0}")
    } else if v.abs() >= 0.1 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

/// A stretch of time on one lane.
#[derive(Debug, Clone, Copy)]
pub struct LaneSpan {
    /// The lane, from 0 at the top.
    pub lane: u32,
    /// Start and end on the x axis.
    pub from: f64,
    /// End on the x axis.
    pub to: f64,
    /// Index into the chart's span kinds.
    pub kind: usize,
}

/// An instant on one lane.
#[derive(Debug, Clone, Copy)]
pub struct LaneMark {
    /// The lane.
    pub lane: u32,
    /// Where on the x axis.
    pub at: f64,
    /// Index into the chart's mark kinds.
    pub kind: usize,
}

/// What a lane chart shows.
#[derive(Debug, Clone)]
pub struct Lanes {
    /// Lanes, from 0.
    pub lanes: u32,
    /// What a lane is, for the y axis ("slot").
    pub lane_label: String,
    /// Span kinds: name and colour, in legend order.
    pub span_kinds: Vec<(String, RGBColor)>,
    /// Mark kinds: name and colour.
    pub mark_kinds: Vec<(String, RGBColor)>,
    /// The spans.
    pub spans: Vec<LaneSpan>,
    /// The marks.
    pub marks: Vec<LaneMark>,
}

/// The space left above and below a lane's bars, in lanes.
const LANE_GAP: f64 = 0.12;

/// Draws lanes of spans (bars) and marks (ticks across the lane) over x:
/// a timeline with one row per lane. Each span is at least a pixel wide
/// so that short ones stay visible. The legend goes below the chart.
pub fn lane_chart(frame: &Frame, lanes: &Lanes) -> Result<String, PlotError> {
    let err = fail(&frame.title);
    let e = |e: DrawingAreaErrorKind<_>| err(e.to_string());
    let x = span(
        lanes
            .spans
            .iter()
            .map(|s| s.to)
            .chain(lanes.marks.iter().map(|m| m.at)),
        false,
    );
    let rows = f64::from(lanes.lanes.max(1));
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, frame.size).into_drawing_area();
        root.fill(&WHITE).map_err(e)?;
        let (plot, legend) = root.split_vertically(frame.size.1.saturating_sub(36));
        let mut chart = ChartBuilder::on(&plot)
            .caption(&frame.title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(64)
            // Lane i is centred on i, so its label sits on it.
            .build_cartesian_2d(x.clone(), (rows - 0.5)..-0.5)
            .map_err(e)?;
        let lane_label = lanes.lane_label.clone();
        chart
            .configure_mesh()
            .x_desc(frame.x.label.as_str())
            .y_desc(lane_label.as_str())
            .x_labels(10)
            .y_labels(lanes.lanes.min(16) as usize + 1)
            .y_label_formatter(&|v| {
                if (v - v.round()).abs() < 1e-6 {
                    format!("{}", v.round() as i64)
                } else {
                    String::new()
                }
            })
            .disable_y_mesh()
            .label_style(("sans-serif", 12))
            .axis_desc_style(("sans-serif", 13))
            .light_line_style(RGBColor(0xF0, 0xF0, 0xF0))
            .draw()
            .map_err(e)?;
        let plot_px = f64::from(chart.plotting_area().dim_in_pixel().0.max(1));
        let min_width = (x.end - x.start) / plot_px;
        chart
            .draw_series(lanes.spans.iter().map(|s| {
                let top = f64::from(s.lane) - 0.5 + LANE_GAP;
                let bottom = f64::from(s.lane) + 0.5 - LANE_GAP;
                let to = s.to.max(s.from + min_width);
                let color = lanes.span_kinds[s.kind].1;
                Rectangle::new([(s.from, top), (to, bottom)], color.filled())
            }))
            .map_err(e)?;
        chart
            .draw_series(lanes.marks.iter().map(|m| {
                let color = lanes.mark_kinds[m.kind].1;
                PathElement::new(
                    vec![
                        (m.at, f64::from(m.lane) - 0.5),
                        (m.at, f64::from(m.lane) + 0.5),
                    ],
                    color.stroke_width(2),
                )
            }))
            .map_err(e)?;
        draw_legend(&legend, lanes).map_err(e)?;
        root.present().map_err(e)?;
    }
    Ok(svg)
}

/// The lane chart's legend: a swatch and a name per span and mark kind,
/// left to right.
fn draw_legend(
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    lanes: &Lanes,
) -> Result<(), DrawingAreaErrorKind<std::io::Error>> {
    let mut x = 76;
    let y = 14;
    let style = ("sans-serif", 13).into_font().color(&BLACK);
    for (name, color) in &lanes.span_kinds {
        area.draw(&Rectangle::new(
            [(x, y - 6), (x + 22, y + 6)],
            color.filled(),
        ))?;
        area.draw(&Text::new(name.as_str(), (x + 28, y - 7), style.clone()))?;
        x += 40 + 7 * name.len() as i32;
    }
    for (name, color) in &lanes.mark_kinds {
        area.draw(&PathElement::new(
            vec![(x + 10, y - 8), (x + 10, y + 8)],
            color.stroke_width(3),
        ))?;
        area.draw(&Text::new(name.as_str(), (x + 20, y - 7), style.clone()))?;
        x += 32 + 7 * name.len() as i32;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(x: Axis, y: Axis) -> Frame {
        Frame {
            title: "t".into(),
            size: (400, 300),
            x,
            y,
            legend: LegendAt::UpperRight,
        }
    }

    #[test]
    fn a_line_chart_is_svg_with_its_legend() {
        let series = [Series {
            label: "commits/s".into(),
            color: PALETTE[0],
            mark: Mark::LinePoints,
            points: vec![(1.0, 10.0), (2.0, 20.0), (4.0, 15.0)],
        }];
        let svg = xy_chart(&frame(Axis::linear("x"), Axis::linear("y")), &series).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..40]);
        assert!(svg.contains("commits/s"));
        assert!(svg.contains("<polyline"), "the line is drawn");
    }

    #[test]
    fn log_axes_skip_what_they_cannot_show() {
        let series = [Series {
            label: String::new(),
            color: PALETTE[1],
            mark: Mark::Points,
            points: vec![(1.0, 0.0), (16.0, 5.0), (-3.0, 1.0), (f64::NAN, 2.0)],
        }];
        let svg = xy_chart(&frame(Axis::log("agents"), Axis::log("ms")), &series).unwrap();
        assert_eq!(svg.matches("<circle").count(), 1, "only (16, 5) fits");
    }

    #[test]
    fn no_points_still_gives_an_empty_frame() {
        let svg = xy_chart(&frame(Axis::linear("x"), Axis::log("y")), &[]).unwrap();
        assert!(svg.contains("</svg>"));
    }

    #[test]
    fn lanes_draw_a_bar_per_span_and_a_tick_per_mark() {
        let lanes = Lanes {
            lanes: 2,
            lane_label: "slot".into(),
            span_kinds: vec![("think".into(), PALETTE[5]), ("commit".into(), PALETTE[0])],
            mark_kinds: vec![("landed".into(), PALETTE[2])],
            spans: vec![
                LaneSpan {
                    lane: 0,
                    from: 0.0,
                    to: 1.0,
                    kind: 0,
                },
                LaneSpan {
                    lane: 1,
                    from: 0.5,
                    to: 0.5,
                    kind: 1,
                },
            ],
            marks: vec![LaneMark {
                lane: 1,
                at: 0.5,
                kind: 0,
            }],
        };
        let svg = lane_chart(&frame(Axis::linear("s"), Axis::linear("")), &lanes).unwrap();
        // The background, two spans and two legend swatches.
        assert_eq!(svg.matches("<rect").count(), 1 + 2 + 2, "{svg}");
        for name in ["think", "commit", "landed"] {
            assert!(svg.contains(name), "{name} in the legend");
        }
    }
}
