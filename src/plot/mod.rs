//! Charts as SVG text, drawn with plotters' SVG backend: line and point
//! series over linear or logarithmic axes ([`xy_chart`]) and a lane chart
//! of spans and marks, one lane per row ([`lane_chart`]).
//!
//! Callers hand in plain figures and get back an `<svg>` element they can
//! put into a page or a file; nothing here knows about trials or sweeps.
//! Colours come from one palette ([`PALETTE`]), chosen to stay apart for
//! readers with colour-blindness (Okabe and Ito's set).

//!
//! This file holds the palette and the shared types; the drawing is in
//! `xy` and `lanes`, and `usl` fits the capacity model the sweep's
//! throughput chart draws.

mod lanes;
pub mod sweep;
pub mod usl;
mod xy;

use std::ops::Range;

use plotters::prelude::*;

pub use lanes::{lane_chart, LaneMark, LaneSpan, Lanes};
pub use xy::{xy_chart, xy_grid};

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
    /// A thin line, no points: a model's curve beside measured lines.
    Thin,
    /// A thin dashed line, no points: a model's curve past the measured
    /// range.
    ThinDashed,
    /// Vertical bars with short caps, one per pair of points: `(x, low)`
    /// then `(x, high)`, e.g. the spread of a point's repeats. A pair
    /// either end of which cannot be shown is left out.
    Bars,
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
    /// The lower left corner (series high on the left, or a gap below
    /// them).
    LowerLeft,
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
