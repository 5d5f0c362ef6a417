//! Gunther's Universal Scalability Law: the throughput of N workers as
//! X(N) = λN / (1 + σ(N − 1) + κN(N − 1)), and its fit to measured
//! (N, X) points by least squares ([`fit`]).
//!
//! λ is the rate of one worker alone; σ (contention) the share of the
//! work that waits for one shared thing, which flattens the curve toward
//! λ/σ; κ (coherency) what every pair of workers pays to agree, which
//! bends it down past its peak at N = √((1 − σ)/κ).
//!
//! The fit keeps σ ≥ 0 and κ ≥ 0. For fixed σ and κ the model is λ times
//! a known curve, so the best λ has a closed form: a coarse grid over
//! (σ, κ), each with its best λ, finds starting points, and a bounded
//! Levenberg–Marquardt descent over all three polishes the best of them.
//! Nothing here knows about trials; the sweep hands in agents and
//! commits/s.

/// A fitted model's parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Usl {
    /// Contention, ≥ 0.
    pub sigma: f64,
    /// Coherency, ≥ 0.
    pub kappa: f64,
    /// The rate of one worker, > 0.
    pub lambda: f64,
}

/// A model fitted to points, and how well it fits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fit {
    /// The parameters.
    pub model: Usl,
    /// The coefficient of determination, 1 − SSE/SST; `None` when every
    /// measured rate is the same (SST = 0).
    pub r2: Option<f64>,
    /// How many points were fitted.
    pub points: usize,
}

/// Where the modelled throughput is highest, N ≥ 1.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Peak {
    /// At `agents` (κ > 0, or σ > 1: then at 1), reaching `rate`.
    At {
        /// The worker count of the peak.
        agents: f64,
        /// The throughput there.
        rate: f64,
    },
    /// Never reached: throughput rises toward this ceiling, λ/σ (κ = 0,
    /// 0 < σ ≤ 1).
    Ceiling(f64),
    /// Never reached and unbounded: linear scaling (σ = κ = 0).
    Unbounded,
}

impl Usl {
    /// The modelled throughput of `n` workers.
    pub fn rate(&self, n: f64) -> f64 {
        self.lambda * self.shape(n)
    }

    /// X(n)/λ: the curve λ scales.
    fn shape(&self, n: f64) -> f64 {
        n / (1.0 + self.sigma * (n - 1.0) + self.kappa * n * (n - 1.0))
    }

    /// Where throughput peaks.
    pub fn peak(&self) -> Peak {
        if self.kappa > 0.0 {
            // X rises while κN² < 1 − σ.
            let agents = ((1.0 - self.sigma) / self.kappa).max(0.0).sqrt().max(1.0);
            Peak::At {
                agents,
                rate: self.rate(agents),
            }
        } else if self.sigma > 1.0 {
            Peak::At {
                agents: 1.0,
                rate: self.lambda,
            }
        } else if self.sigma > 0.0 {
            Peak::Ceiling(self.lambda / self.sigma)
        } else {
            Peak::Unbounded
        }
    }
}

/// Fits the model to `(workers, rate)` points. Points with a worker count
/// below 1 or a rate that is negative or not finite are left out; `None`
/// when fewer than 3 distinct worker counts remain or no positive λ fits
/// (every rate 0).
pub fn fit(points: &[(f64, f64)]) -> Option<Fit> {
    let pts: Vec<(f64, f64)> = points
        .iter()
        .copied()
        .filter(|&(n, x)| n.is_finite() && n >= 1.0 && x.is_finite() && x >= 0.0)
        .collect();
    let mut counts: Vec<f64> = pts.iter().map(|p| p.0).collect();
    counts.sort_by(f64::total_cmp);
    counts.dedup();
    if counts.len() < 3 {
        return None;
    }
    let mut seeds: Vec<(f64, [f64; 3])> = grid()
        .filter_map(|(sigma, kappa)| {
            let lambda = best_lambda(&pts, sigma, kappa)?;
            let p = [sigma, kappa, lambda];
            Some((sse(&pts, p), p))
        })
        .collect();
    seeds.sort_by(|a, b| a.0.total_cmp(&b.0));
    let [sigma, kappa, _] = seeds
        .iter()
        .take(3)
        .map(|&(_, p)| polish(&pts, p))
        .min_by(|a, b| sse(&pts, *a).total_cmp(&sse(&pts, *b)))?;
    // λ again in closed form: the exact optimum for the σ and κ found.
    let lambda = best_lambda(&pts, sigma, kappa).filter(|l| *l > 0.0)?;
    let model = Usl {
        sigma,
        kappa,
        lambda,
    };
    let mean = pts.iter().map(|p| p.1).sum::<f64>() / pts.len() as f64;
    let sst: f64 = pts.iter().map(|p| (p.1 - mean).powi(2)).sum();
    let sse = sse(&pts, [sigma, kappa, lambda]);
    Some(Fit {
        model,
        r2: (sst > 0.0).then(|| 1.0 - sse / sst),
        points: pts.len(),
    })
}

/// Starting points: σ from 1e-4 to 10 and κ from 1e-8 to 10, five steps a
/// decade, each also 0.
fn grid() -> impl Iterator<Item = (f64, f64)> {
    let steps = |from: i32, to: i32| {
        std::iter::once(0.0).chain((from * 5..=to * 5).map(|i| 10f64.powf(f64::from(i) / 5.0)))
    };
    steps(-4, 1).flat_map(move |s| steps(-8, 1).map(move |k| (s, k)))
}

/// The λ that fits best for `sigma` and `kappa`: Σ X·g / Σ g², where g is
/// the model's shape; `None` when it is not finite.
fn best_lambda(pts: &[(f64, f64)], sigma: f64, kappa: f64) -> Option<f64> {
    let model = Usl {
        sigma,
        kappa,
        lambda: 1.0,
    };
    let (xg, gg) = pts.iter().fold((0.0, 0.0), |(xg, gg), &(n, x)| {
        let g = model.shape(n);
        (xg + x * g, gg + g * g)
    });
    Some(xg / gg).filter(|l| l.is_finite())
}

/// The sum of squared residuals of parameters `[σ, κ, λ]`.
fn sse(pts: &[(f64, f64)], [sigma, kappa, lambda]: [f64; 3]) -> f64 {
    let model = Usl {
        sigma,
        kappa,
        lambda,
    };
    let s: f64 = pts.iter().map(|&(n, x)| (x - model.rate(n)).powi(2)).sum();
    if s.is_finite() {
        s
    } else {
        f64::INFINITY
    }
}

/// Levenberg–Marquardt from `start` over `[σ, κ, λ]`, each step clipped to
/// σ, κ ≥ 0 and λ > 0; a parameter at its bound whose descent points
/// outward is held there for the step.
fn polish(pts: &[(f64, f64)], start: [f64; 3]) -> [f64; 3] {
    let mut p = start;
    let mut cost = sse(pts, p);
    let mut damping = 1e-3;
    for _ in 0..300 {
        if cost == 0.0 || damping > 1e12 {
            break;
        }
        let (jtj, jtr) = normal_equations(pts, p);
        let mut a = jtj;
        let mut b = jtr;
        for j in 0..3 {
            if j < 2 && p[j] <= 0.0 && b[j] <= 0.0 {
                a[j] = [0.0; 3];
                (0..3).for_each(|i| a[i][j] = 0.0);
                a[j][j] = 1.0;
                b[j] = 0.0;
            } else {
                a[j][j] += damping * jtj[j][j].max(f64::MIN_POSITIVE);
            }
        }
        let Some(step) = solve(a, b) else {
            damping *= 10.0;
            continue;
        };
        let trial = [
            (p[0] + step[0]).max(0.0),
            (p[1] + step[1]).max(0.0),
            (p[2] + step[2]).max(f64::MIN_POSITIVE),
        ];
        let c = sse(pts, trial);
        if c < cost {
            (p, cost) = (trial, c);
            damping = (damping / 10.0).max(1e-15);
        } else {
            damping *= 10.0;
        }
    }
    p
}

/// JᵀJ and Jᵀr at `[σ, κ, λ]`, J the model's derivatives by parameter at
/// each point and r the residuals (measured − modelled).
fn normal_equations(
    pts: &[(f64, f64)],
    [sigma, kappa, lambda]: [f64; 3],
) -> ([[f64; 3]; 3], [f64; 3]) {
    let mut jtj = [[0.0; 3]; 3];
    let mut jtr = [0.0; 3];
    for &(n, x) in pts {
        let d = 1.0 + sigma * (n - 1.0) + kappa * n * (n - 1.0);
        let model = lambda * n / d;
        let j = [-model * (n - 1.0) / d, -model * n * (n - 1.0) / d, n / d];
        for r in 0..3 {
            jtr[r] += j[r] * (x - model);
            for c in 0..3 {
                jtj[r][c] += j[r] * j[c];
            }
        }
    }
    (jtj, jtr)
}

/// Solves `a · s = b` by Gaussian elimination with partial pivoting;
/// `None` when `a` is singular or the answer not finite.
fn solve(mut a: [[f64; 3]; 3], mut b: [f64; 3]) -> Option<[f64; 3]> {
    for col in 0..3 {
        let pivot = (col..3).max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))?;
        if a[pivot][col] == 0.0 {
            return None;
        }
        a.swap(col, pivot);
        b.swap(col, pivot);
        for row in col + 1..3 {
            let f = a[row][col] / a[col][col];
            let pivot_row = a[col];
            for (x, p) in a[row].iter_mut().zip(pivot_row).skip(col) {
                *x -= f * p;
            }
            b[row] -= f * b[col];
        }
    }
    let mut s = [0.0; 3];
    for row in (0..3).rev() {
        let rest: f64 = (row + 1..3).map(|k| a[row][k] * s[k]).sum();
        s[row] = (b[row] - rest) / a[row][row];
    }
    s.iter().all(|v| v.is_finite()).then_some(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const AGENTS: [f64; 8] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0];

    fn points(model: Usl, noise: &[f64]) -> Vec<(f64, f64)> {
        AGENTS
            .iter()
            .zip(noise.iter().chain(std::iter::repeat(&0.0)))
            .map(|(&n, e)| (n, model.rate(n) * (1.0 + e)))
            .collect()
    }

    fn near(got: f64, want: f64, within: f64) -> bool {
        (got - want).abs() <= within * want.abs()
    }

    const MODEL: Usl = Usl {
        sigma: 0.05,
        kappa: 0.0008,
        lambda: 180.0,
    };

    #[test]
    fn exact_points_give_back_their_parameters() {
        let fit = fit(&points(MODEL, &[])).unwrap();
        let m = fit.model;
        assert!(near(m.sigma, 0.05, 1e-6), "{m:?}");
        assert!(near(m.kappa, 0.0008, 1e-6), "{m:?}");
        assert!(near(m.lambda, 180.0, 1e-6), "{m:?}");
        assert!(fit.r2.unwrap() > 1.0 - 1e-12, "{fit:?}");
        assert_eq!(fit.points, 8);
    }

    #[test]
    fn noisy_points_give_their_parameters_within_five_percent() {
        let noise = [0.02, -0.03, 0.025, -0.02, 0.03, -0.025, 0.02, -0.03];
        let fit = fit(&points(MODEL, &noise)).unwrap();
        let m = fit.model;
        assert!(near(m.sigma, 0.05, 0.05), "{m:?}");
        assert!(near(m.kappa, 0.0008, 0.05), "{m:?}");
        assert!(near(m.lambda, 180.0, 0.05), "{m:?}");
        assert!(fit.r2.unwrap() > 0.95, "{fit:?}");
        let Peak::At { agents, rate } = m.peak() else {
            panic!("{:?}", m.peak())
        };
        // √(0.95 / 0.0008) ≈ 34.5.
        assert!(near(agents, 34.46, 0.05), "{agents}");
        assert!(near(rate, MODEL.rate(34.46), 0.05), "{rate}");
    }

    #[test]
    fn amdahl_points_fit_without_coherency_or_peak() {
        let amdahl = Usl {
            sigma: 0.1,
            kappa: 0.0,
            lambda: 50.0,
        };
        let fit = fit(&points(amdahl, &[])).unwrap();
        assert_eq!(fit.model.kappa, 0.0, "{fit:?}");
        assert!(near(fit.model.sigma, 0.1, 1e-6), "{fit:?}");
        let Peak::Ceiling(ceiling) = fit.model.peak() else {
            panic!("{:?}", fit.model.peak())
        };
        assert!(near(ceiling, 500.0, 1e-6), "{ceiling}");
    }

    #[test]
    fn too_few_or_empty_points_give_no_fit() {
        assert_eq!(fit(&[(1.0, 10.0), (2.0, 18.0)]), None);
        assert_eq!(fit(&[(1.0, 10.0), (2.0, 18.0), (2.0, 19.0)]), None);
        assert_eq!(fit(&[(1.0, 0.0), (2.0, 0.0), (4.0, 0.0)]), None);
        assert_eq!(fit(&[]), None);
        let bad = [
            (0.0, 1.0),
            (f64::NAN, 2.0),
            (4.0, -1.0),
            (8.0, f64::INFINITY),
        ];
        assert_eq!(fit(&bad), None);
    }

    #[test]
    fn flat_points_fit_with_no_r2() {
        let fit = fit(&[(1.0, 5.0), (2.0, 5.0), (4.0, 5.0)]).unwrap();
        assert_eq!(fit.r2, None);
        assert!(near(fit.model.rate(8.0), 5.0, 1e-6), "{fit:?}");
    }

    #[test]
    fn the_peak_of_each_shape() {
        let at = |sigma, kappa| {
            Usl {
                sigma,
                kappa,
                lambda: 10.0,
            }
            .peak()
        };
        assert_eq!(at(0.0, 0.0), Peak::Unbounded);
        assert_eq!(at(0.5, 0.0), Peak::Ceiling(20.0));
        assert_eq!(
            at(2.0, 0.0),
            Peak::At {
                agents: 1.0,
                rate: 10.0
            }
        );
        let Peak::At { agents, rate } = at(0.0, 0.25) else {
            panic!()
        };
        assert_eq!(agents, 2.0);
        assert!(near(rate, 20.0 / 1.5, 1e-12), "{rate}");
        assert_eq!(
            at(0.0, 4.0),
            Peak::At {
                agents: 1.0,
                rate: 10.0
            }
        );
    }

    proptest! {
        #[test]
        fn exact_points_are_fitted_closely(
            sigma in 0.0..0.5f64,
            kappa in 0.0..0.01f64,
            lambda in 1.0..1000.0f64,
        ) {
            let model = Usl { sigma, kappa, lambda };
            let pts = points(model, &[]);
            let fit = fit(&pts).unwrap();
            for (n, x) in pts {
                prop_assert!(near(fit.model.rate(n), x, 1e-4), "{fit:?} at {n}: {x}");
            }
        }

        #[test]
        fn any_points_fit_or_not_without_panicking(
            pts in proptest::collection::vec((-2.0..300.0f64, -10.0..1e6f64), 0..12),
        ) {
            if let Some(fit) = fit(&pts) {
                prop_assert!(fit.model.sigma >= 0.0 && fit.model.kappa >= 0.0);
                prop_assert!(fit.model.lambda > 0.0);
            }
        }
    }
}
