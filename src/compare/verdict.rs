//! Whether a figure changed between two sets of runs or only moved within
//! the noise: the rule `herd compare` states under its table.
//!
//! With two runs or more on each side, the runs measure the noise
//! themselves. A change is real when the two ranges do not overlap (every
//! run on one side beats every run on the other) and Welch's t-test puts
//! the difference of the means at p < 0.05. The first condition assumes
//! nothing about how runs scatter, but alone it is weak: disjoint ranges
//! happen by chance one time in ten with three runs a side, one in three
//! with two. The second asks that the gap be large against the scatter.
//! A distribution-free test cannot do that job at the repeat counts a
//! sweep affords: with three runs a side the smallest two-sided p of
//! Mann–Whitney's U, or of any permutation test, is 2 / C(6, 3) = 0.1.
//!
//! With a single run on either side there is no noise to measure: a change
//! is real when the medians differ by more than a stated share of the
//! first side's (`--noise`, 5 % by default), and the output says so.

use serde::Serialize;

use crate::plot::sweep::points::median;

/// The p below which a difference between repeats counts.
pub const SIGNIFICANCE: f64 = 0.05;

/// Which way a figure improves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Better {
    /// More is better (commits per second).
    Higher,
    /// Less is better (latency, CPU, requests).
    Lower,
}

/// What the comparison says of one figure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The second side is better, beyond the noise.
    Better,
    /// The second side is worse, beyond the noise.
    Worse,
    /// Any difference is within the noise.
    WithinNoise,
}

impl Verdict {
    /// The verdict as the table prints it.
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Better => "better",
            Verdict::Worse => "worse",
            Verdict::WithinNoise => "within noise",
        }
    }
}

/// How a verdict was reached.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "test", rename_all = "snake_case")]
pub enum Basis {
    /// Repeats on both sides: the ranges and Welch's t-test.
    Repeats {
        /// Welch's two-sided p for the difference of the means.
        p: f64,
        /// Whether the two ranges overlap.
        overlap: bool,
    },
    /// A single run on a side (no repeats): the relative threshold.
    Threshold {
        /// The share of the first side's median that counts, in percent.
        noise_pct: f64,
    },
}

/// One side's runs of one figure.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sample {
    /// How many runs have the figure.
    pub runs: usize,
    /// Their median.
    pub median: f64,
    /// The smallest.
    pub min: f64,
    /// The largest.
    pub max: f64,
    #[serde(skip)]
    values: Vec<f64>,
}

impl Sample {
    /// The finite values among `values`; `None` when there are none.
    pub fn new(values: impl IntoIterator<Item = f64>) -> Option<Sample> {
        let mut values: Vec<f64> = values.into_iter().filter(|v| v.is_finite()).collect();
        values.sort_by(f64::total_cmp);
        Some(Sample {
            runs: values.len(),
            median: median(values.iter().map(|&v| Some(v)))?,
            min: *values.first()?,
            max: *values.last()?,
            values,
        })
    }
}

/// A figure's change from `a` to `b` and what it means.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Judgement {
    /// (b − a) ÷ |a| of the medians, in percent; `None` when a's is 0.
    pub change_pct: Option<f64>,
    /// Better, worse or within noise.
    pub verdict: Verdict,
    /// Which rule decided.
    pub basis: Basis,
}

/// Judges the change from `a` to `b` of a figure that improves the way
/// `better` says; `noise_pct` is the threshold for single runs.
pub fn judge(a: &Sample, b: &Sample, better: Better, noise_pct: f64) -> Judgement {
    let change = b.median - a.median;
    let (real, basis) = if a.runs < 2 || b.runs < 2 {
        let real = change.abs() > noise_pct / 100.0 * a.median.abs();
        (real, Basis::Threshold { noise_pct })
    } else {
        let overlap = a.max >= b.min && b.max >= a.min;
        let p = welch_p(&a.values, &b.values);
        (!overlap && p < SIGNIFICANCE, Basis::Repeats { p, overlap })
    };
    let verdict = if !real || change == 0.0 {
        Verdict::WithinNoise
    } else if (change > 0.0) == (better == Better::Higher) {
        Verdict::Better
    } else {
        Verdict::Worse
    };
    Judgement {
        change_pct: (a.median != 0.0).then(|| change / a.median.abs() * 100.0),
        verdict,
        basis,
    }
}

/// The mean and the sample variance of at least two values.
fn mean_var(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, var)
}

/// Welch's two-sided p for the means of `a` and `b` (two values or more
/// each) being equal. Two constant samples: 1 when they agree, 0 when not.
fn welch_p(a: &[f64], b: &[f64]) -> f64 {
    let (mean_a, var_a) = mean_var(a);
    let (mean_b, var_b) = mean_var(b);
    let (se_a, se_b) = (var_a / a.len() as f64, var_b / b.len() as f64);
    let se = se_a + se_b;
    if se == 0.0 {
        return if mean_a == mean_b { 1.0 } else { 0.0 };
    }
    let t = (mean_b - mean_a) / se.sqrt();
    // Welch–Satterthwaite: the degrees of freedom of the combined error.
    let df = se * se / (se_a * se_a / (a.len() - 1) as f64 + se_b * se_b / (b.len() - 1) as f64);
    t_two_sided(t, df)
}

/// P(|T| ≥ |t|) for Student's t with `df` degrees of freedom.
fn t_two_sided(t: f64, df: f64) -> f64 {
    beta_regularized(df / 2.0, 0.5, df / (df + t * t))
}

/// The regularized incomplete beta function I_x(a, b), from its continued
/// fraction on whichever side of the mean it converges fast.
fn beta_regularized(a: f64, b: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let front =
        (ln_gamma(a + b) - ln_gamma(a) - ln_gamma(b) + a * x.ln() + b * (1.0 - x).ln()).exp();
    if x < (a + 1.0) / (a + b + 2.0) {
        front * beta_fraction(a, b, x) / a
    } else {
        1.0 - front * beta_fraction(b, a, 1.0 - x) / b
    }
}

/// The continued fraction of I_x(a, b), evaluated by the modified Lentz
/// method: each step folds one term into `c` and `d`.
fn beta_fraction(a: f64, b: f64, x: f64) -> f64 {
    const TINY: f64 = 1e-300;
    let clamp = |v: f64| if v.abs() < TINY { TINY } else { v };
    let mut c = 1.0;
    let mut d = 1.0 / clamp(1.0 - (a + b) * x / (a + 1.0));
    let mut h = d;
    for m in 1..=300 {
        let m = f64::from(m);
        let even = m * (b - m) * x / ((a + 2.0 * m - 1.0) * (a + 2.0 * m));
        let odd = -(a + m) * (a + b + m) * x / ((a + 2.0 * m) * (a + 2.0 * m + 1.0));
        for term in [even, odd] {
            d = 1.0 / clamp(1.0 + term * d);
            c = clamp(1.0 + term / c);
            h *= d * c;
        }
        if (d * c - 1.0).abs() < 1e-14 {
            break;
        }
    }
    h
}

/// ln Γ(x) for x > 0, by Lanczos' approximation (g = 7, nine terms),
/// good to about 15 digits.
fn ln_gamma(x: f64) -> f64 {
    const G: f64 = 7.0;
    const COEFFICIENTS: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // The reflection formula: Γ(x) Γ(1 − x) = π / sin(πx).
        let pi = std::f64::consts::PI;
        return (pi / (pi * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let sum = COEFFICIENTS[1..]
        .iter()
        .enumerate()
        .fold(COEFFICIENTS[0], |s, (i, c)| s + c / (x + i as f64 + 1.0));
    let t = x + G + 0.5;
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + sum.ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(values: &[f64]) -> Sample {
        Sample::new(values.iter().copied()).unwrap()
    }

    fn verdict(a: &[f64], b: &[f64], better: Better) -> Verdict {
        judge(&sample(a), &sample(b), better, 5.0).verdict
    }

    #[test]
    fn student_t_tails_match_the_tables() {
        // Two-sided 5 % critical values of t for 1, 2, 4 and 10 degrees.
        for (t, df) in [(12.706, 1.0), (4.303, 2.0), (2.776, 4.0), (2.228, 10.0)] {
            let p = t_two_sided(t, df);
            assert!((p - 0.05).abs() < 2e-4, "t {t} df {df}: p {p}");
            assert_eq!(t_two_sided(-t, df), p);
        }
        assert!((t_two_sided(0.0, 3.0) - 1.0).abs() < 1e-12);
        assert!((t_two_sided(1.0, 1.0) - 0.5).abs() < 1e-12);
        assert!((ln_gamma(5.0) - 24f64.ln()).abs() < 1e-12);
        assert!((ln_gamma(0.5) - std::f64::consts::PI.sqrt().ln()).abs() < 1e-12);
    }

    #[test]
    fn clearly_apart_repeats_are_a_change_either_way() {
        let slow = [100.0, 102.0, 101.0];
        let fast = [120.0, 121.0, 119.0];
        assert_eq!(verdict(&slow, &fast, Better::Higher), Verdict::Better);
        assert_eq!(verdict(&fast, &slow, Better::Higher), Verdict::Worse);
        // Less latency or CPU is better.
        assert_eq!(verdict(&fast, &slow, Better::Lower), Verdict::Better);
        assert_eq!(verdict(&slow, &fast, Better::Lower), Verdict::Worse);
        let j = judge(&sample(&slow), &sample(&fast), Better::Higher, 5.0);
        let Basis::Repeats { p, overlap } = j.basis else {
            panic!("repeats on both sides: {j:?}");
        };
        assert!(p < 0.001 && !overlap, "{j:?}");
        assert!((j.change_pct.unwrap() - 100.0 * 19.0 / 101.0).abs() < 1e-9);
    }

    #[test]
    fn overlapping_or_scattered_repeats_are_noise() {
        // The ranges overlap: noise, however the medians differ.
        let a = [100.0, 110.0, 105.0];
        let b = [104.0, 130.0, 125.0];
        let j = judge(&sample(&a), &sample(&b), Better::Higher, 5.0);
        assert_eq!(j.verdict, Verdict::WithinNoise);
        assert!(matches!(j.basis, Basis::Repeats { overlap: true, .. }));
        // Apart, but the gap is small against the scatter of two runs.
        let j = judge(
            &sample(&[100.0, 130.0]),
            &sample(&[131.0, 160.0]),
            Better::Higher,
            5.0,
        );
        assert_eq!(j.verdict, Verdict::WithinNoise, "{j:?}");
        assert!(matches!(j.basis, Basis::Repeats { overlap: false, p } if p > 0.05));
    }

    #[test]
    fn constant_repeats_differ_only_when_their_values_do() {
        let same = [1.0667; 3];
        assert_eq!(verdict(&same, &same, Better::Lower), Verdict::WithinNoise);
        assert_eq!(verdict(&same, &[1.1; 3], Better::Lower), Verdict::Worse);
    }

    #[test]
    fn single_runs_are_judged_by_the_threshold() {
        let under = judge(&sample(&[100.0]), &sample(&[104.0]), Better::Higher, 5.0);
        assert_eq!(under.verdict, Verdict::WithinNoise);
        assert_eq!(under.basis, Basis::Threshold { noise_pct: 5.0 });
        assert_eq!(verdict(&[100.0], &[106.0], Better::Higher), Verdict::Better);
        assert_eq!(verdict(&[100.0], &[106.0], Better::Lower), Verdict::Worse);
        assert_eq!(verdict(&[100.0], &[94.0], Better::Lower), Verdict::Better);
        let wide = judge(&sample(&[100.0]), &sample(&[106.0]), Better::Higher, 10.0);
        assert_eq!(wide.verdict, Verdict::WithinNoise);
        // Repeats on one side only: still no noise measured on the other.
        let one_side = judge(
            &sample(&[100.0]),
            &sample(&[110.0, 111.0, 109.0]),
            Better::Higher,
            5.0,
        );
        assert_eq!(one_side.verdict, Verdict::Better);
        assert!(matches!(one_side.basis, Basis::Threshold { .. }));
    }

    #[test]
    fn zero_and_odd_values_never_panic() {
        let j = judge(&sample(&[0.0]), &sample(&[0.0]), Better::Lower, 5.0);
        assert_eq!((j.verdict, j.change_pct), (Verdict::WithinNoise, None));
        let j = judge(&sample(&[0.0]), &sample(&[1.0]), Better::Lower, 5.0);
        assert_eq!((j.verdict, j.change_pct), (Verdict::Worse, None));
        assert!(Sample::new([f64::NAN, f64::INFINITY]).is_none());
        assert_eq!(sample(&[3.0, f64::NAN, 1.0]).median, 2.0);
    }
}
