//! Lane charts: a timeline with one row per lane (a slot), spans drawn as
//! bars and marks as ticks across the lane, the legend below the chart.

use plotters::coord::Shift;
use plotters::prelude::*;

use super::{fail, span, Frame, PlotError};

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
    use crate::plot::{Axis, LegendAt, PALETTE};

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
        let frame = Frame {
            title: "t".into(),
            size: (400, 300),
            x: Axis::linear("s"),
            y: Axis::linear(""),
            legend: LegendAt::UpperRight,
        };
        let svg = lane_chart(&frame, &lanes).unwrap();
        // The background, two spans and two legend swatches.
        assert_eq!(svg.matches("<rect").count(), 1 + 2 + 2, "{svg}");
        for name in ["think", "commit", "landed"] {
            assert!(svg.contains(name), "{name} in the legend");
        }
    }
}
