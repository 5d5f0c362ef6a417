//! The comparison as text: which files, an aligned table of its rows, and
//! under it the rule that gave the verdicts and the settings the two
//! files' runs disagree on.

use std::fmt::Write as _;

use super::{Basis, Cell, Comparison, FigureRow, Input, Row, Sample, Side, SIGNIFICANCE};

const HEAD: [&str; 7] = ["point", "figure", "A", "B", "change", "verdict", "basis"];
/// The column aligned to the right (the change).
const RIGHT: usize = 4;
/// The mark of a point whose runs differ in a setting between the files.
const DIFFERS: &str = "*";

/// The whole text `herd compare` prints.
pub(super) fn render(c: &Comparison) -> String {
    let mut out = String::new();
    for (side, input) in [(Side::A, &c.a), (Side::B, &c.b)] {
        let _ = writeln!(out, "{side:?}: {}", input_line(input));
    }
    out.push('\n');
    let cells: Vec<[String; 7]> = c.rows.iter().map(cells).collect();
    out.push_str(&table(&cells));
    if !c.rows.iter().any(|r| matches!(r.cell, Cell::Figure(_))) {
        out.push_str("\nno point is in both files\n");
    }
    for block in [rule(c), differences(c)] {
        if !block.is_empty() {
            let _ = write!(out, "\n{}\n", block.join("\n"));
        }
    }
    out
}

fn input_line(input: &Input) -> String {
    let runs = plural(input.runs, "run");
    match input.excluded {
        0 => format!("{}, {runs}", input.path.display()),
        n => format!(
            "{}, {runs} ({} failed, left out)",
            input.path.display(),
            plural(n, "run")
        ),
    }
}

pub(super) fn plural(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

/// A row's cells, in the order of [`HEAD`].
fn cells(row: &Row) -> [String; 7] {
    let point = row.point.to_string();
    match &row.cell {
        Cell::Figure(f) => [
            if f.settings_differ.is_empty() {
                point
            } else {
                format!("{point} {DIFFERS}")
            },
            f.figure.label.into(),
            sample(&f.a),
            sample(&f.b),
            f.judgement
                .change_pct
                .map_or_else(|| "n/a".into(), |pct| format!("{pct:+.1}%")),
            f.judgement.verdict.label().into(),
            basis(f),
        ],
        Cell::OnlyIn { only_in, runs } => {
            let (a, b) = match only_in {
                Side::A => (plural(*runs, "run"), "-".into()),
                Side::B => ("-".into(), plural(*runs, "run")),
            };
            let verdict = format!("only in {only_in:?}");
            [
                point,
                "-".into(),
                a,
                b,
                String::new(),
                verdict,
                String::new(),
            ]
        }
    }
}

/// The median, and with repeats the range and their count.
fn sample(s: &Sample) -> String {
    if s.runs < 2 {
        number(s.median)
    } else {
        format!(
            "{} ({}–{}, n={})",
            number(s.median),
            number(s.min),
            number(s.max),
            s.runs
        )
    }
}

/// Four significant digits, at most three decimals.
fn number(v: f64) -> String {
    let magnitude = if v == 0.0 {
        0
    } else {
        v.abs().log10().floor() as i32
    };
    let decimals = (3 - magnitude).clamp(0, 3) as usize;
    format!("{v:.decimals$}")
}

fn basis(f: &FigureRow) -> String {
    match f.judgement.basis {
        Basis::Repeats { p, overlap } => {
            let p = if p < 0.001 {
                "p<0.001".to_string()
            } else {
                format!("p={p:.3}")
            };
            if overlap {
                format!("{p}, ranges overlap")
            } else {
                p
            }
        }
        Basis::Threshold { noise_pct } => format!("no repeats, ±{noise_pct}%"),
    }
}

/// `rows` under [`HEAD`], each column as wide as its widest cell.
fn table(rows: &[[String; 7]]) -> String {
    let head = HEAD.map(String::from);
    let mut widths = [0; 7];
    for row in std::iter::once(&head).chain(rows) {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(&head).chain(rows) {
        let mut line = String::new();
        for (i, (cell, w)) in row.iter().zip(widths).enumerate() {
            let pad = " ".repeat(w - cell.chars().count());
            if i > 0 {
                line.push_str("  ");
            }
            if i == RIGHT {
                line.push_str(&pad);
                line.push_str(cell);
            } else {
                line.push_str(cell);
                line.push_str(&pad);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// The rules behind the verdicts the table shows.
fn rule(c: &Comparison) -> Vec<String> {
    let bases = || {
        c.rows.iter().filter_map(|r| match &r.cell {
            Cell::Figure(f) => Some(f.judgement.basis),
            Cell::OnlyIn { .. } => None,
        })
    };
    let mut lines = Vec::new();
    if bases().any(|b| matches!(b, Basis::Repeats { .. })) {
        lines.push(format!(
            "With two runs or more on each side, a change counts when the ranges do\n\
             not overlap and Welch's t-test gives p < {SIGNIFICANCE}."
        ));
    }
    if bases().any(|b| matches!(b, Basis::Threshold { .. })) {
        lines.push(format!(
            "No repeats: with a single run on a side there is no noise to measure, and\n\
             a change counts when the medians differ by more than {}% of A's (--noise).\n\
             scripts/sweep --repeat 3 measures the noise.",
            c.noise_pct
        ));
    }
    lines
}

/// A line for each point whose runs disagree between the files on a
/// setting the point does not name, under a heading.
fn differences(c: &Comparison) -> Vec<String> {
    let mut lines = vec![format!(
        "{DIFFERS} Not the same trial: the files' runs differ in a setting the point does not name:"
    )];
    let mut last = None;
    for row in &c.rows {
        let Cell::Figure(f) = &row.cell else { continue };
        if f.settings_differ.is_empty() || last == Some(&row.point) {
            continue;
        }
        last = Some(&row.point);
        let what: Vec<String> = f
            .settings_differ
            .iter()
            .map(|d| format!("{} (A {}, B {})", d.setting, d.a, d.b))
            .collect();
        lines.push(format!("  {}: {}", row.point, what.join(", ")));
    }
    if lines.len() == 1 {
        lines.clear();
    }
    lines
}
