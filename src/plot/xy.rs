//! Line and point charts: one chart ([`xy_chart`]) or a grid of them in
//! one SVG ([`xy_grid`]), each drawn as a panel with its axes fitted to its
//! series and a legend for the named ones.

use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::coord::Shift;
use plotters::prelude::*;

use super::{fail, span, Frame, LegendAt, Mark, PlotError, Series};

/// An axis range plotters can draw and label: linear or logarithmic, over
/// `f64`.
trait Scale: AsRangedCoord<Value = f64, CoordDescType: ValueFormatter<f64>> {}

impl<T: AsRangedCoord<Value = f64, CoordDescType: ValueFormatter<f64>>> Scale for T {}

/// A chart on a panel, over the axes `X` and `Y` make.
type XyChart<'a, 'b, X, Y> = ChartContext<
    'a,
    SVGBackend<'b>,
    Cartesian2d<<X as AsRangedCoord>::CoordDescType, <Y as AsRangedCoord>::CoordDescType>,
>;

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

/// The series on axes over `x` and `y`, then the legend when any series
/// is named.
fn draw_xy<X: Scale, Y: Scale>(
    root: &DrawingArea<SVGBackend<'_>, Shift>,
    frame: &Frame,
    series: &[Series],
    x: X,
    y: Y,
) -> Result<(), String> {
    let e = |e: DrawingAreaErrorKind<_>| e.to_string();
    let mut chart = axes(root, frame, x, y)?;
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
            Mark::Thin => chart.draw_series(LineSeries::new(points, color.stroke_width(1))),
            Mark::ThinDashed => {
                chart.draw_series(DashedLineSeries::new(points, 5, 4, color.stroke_width(1)))
            }
            Mark::Bars => {
                let bars: Vec<[(f64, f64); 2]> = s
                    .points
                    .chunks_exact(2)
                    .filter(|pair| pair.iter().all(|p| fits(&p)))
                    .map(|pair| [pair[0], pair[1]])
                    .collect();
                let caps = bars.iter().flatten().map(|&p| {
                    EmptyElement::at(p) + PathElement::new([(-3, 0), (3, 0)], color.stroke_width(1))
                });
                chart.draw_series(caps).map_err(e)?;
                chart.draw_series(
                    bars.into_iter()
                        .map(|bar| PathElement::new(bar, color.stroke_width(1))),
                )
            }
        }
        .map_err(e)?;
        if !s.label.is_empty() {
            labelled = true;
            let dashed = matches!(s.mark, Mark::DashedPoints | Mark::Rule | Mark::ThinDashed);
            let width = if matches!(s.mark, Mark::Thin | Mark::ThinDashed) {
                1
            } else {
                3
            };
            drawn.label(s.label.as_str()).legend(move |(x, y)| {
                let style = color.stroke_width(width);
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
            .position(legend_position(frame.legend))
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(0xBB, 0xBB, 0xBB))
            .label_font(("sans-serif", 12))
            .draw()
            .map_err(e)?;
    }
    Ok(())
}

/// The chart on `root`: its caption, and axes over `x` and `y` with their
/// descriptions, ticks and a light grid.
fn axes<'a, 'b, X: Scale, Y: Scale>(
    root: &'a DrawingArea<SVGBackend<'b>, Shift>,
    frame: &Frame,
    x: X,
    y: Y,
) -> Result<XyChart<'a, 'b, X, Y>, String> {
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
    Ok(chart)
}

/// Where plotters puts a legend at `at`.
fn legend_position(at: LegendAt) -> SeriesLabelPosition {
    match at {
        LegendAt::UpperRight => SeriesLabelPosition::UpperRight,
        LegendAt::UpperLeft => SeriesLabelPosition::UpperLeft,
        LegendAt::LowerRight => SeriesLabelPosition::LowerRight,
        LegendAt::LowerLeft => SeriesLabelPosition::LowerLeft,
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plot::{Axis, PALETTE};

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
    fn bars_are_drawn_per_pair_and_left_out_when_an_end_cannot_show() {
        let series = [Series {
            label: String::new(),
            color: PALETTE[2],
            mark: Mark::Bars,
            points: vec![(1.0, 5.0), (1.0, 9.0), (4.0, 0.0), (4.0, 3.0), (8.0, 2.0)],
        }];
        let svg = xy_chart(&frame(Axis::log("agents"), Axis::log("ms")), &series).unwrap();
        // One bar (1, 5–9) and its two caps; (4, 0) cannot go on a log
        // axis and (8, 2) has no pair.
        let green = svg
            .lines()
            .filter(|l| l.contains("<polyline") && l.contains("#009E73"))
            .count();
        assert_eq!(green, 3, "{svg}");
    }

    #[test]
    fn no_points_still_gives_an_empty_frame() {
        let svg = xy_chart(&frame(Axis::linear("x"), Axis::log("y")), &[]).unwrap();
        assert!(svg.contains("</svg>"));
    }
}
