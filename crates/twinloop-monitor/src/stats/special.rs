//! Special functions the p-values need: the normal CDF and the chi-square survival function.
//!
//! Evidently takes these from scipy (`norm.cdf`, `chi2.sf`); the error budget for a port is
//! 1e-9 absolute on p, which `libm`'s erf/erfc (musl, < 1 ulp) and the classic series /
//! continued-fraction evaluation of the incomplete gamma function meet with room to spare
//! (checked against scipy in `tests/monitor`).

/// Standard normal CDF, evaluated as scipy's `ndtr` does: through `erf` near zero (where `erfc`
/// would lose digits to cancellation) and through `erfc` in the tails.
pub fn norm_cdf(x: f64) -> f64 {
    if x.is_nan() {
        return f64::NAN;
    }
    let z = x * std::f64::consts::FRAC_1_SQRT_2;
    if z.abs() < std::f64::consts::FRAC_1_SQRT_2 {
        0.5 + 0.5 * libm::erf(z)
    } else {
        let y = 0.5 * libm::erfc(z.abs());
        if z > 0.0 { 1.0 - y } else { y }
    }
}

/// Survival function of the chi-square distribution with `dof` degrees of freedom.
pub fn chi2_sf(stat: f64, dof: f64) -> f64 {
    if stat.is_nan() || dof <= 0.0 {
        return f64::NAN;
    }
    if stat == f64::INFINITY {
        return 0.0;
    }
    if stat <= 0.0 {
        return 1.0;
    }
    gamma_q(dof / 2.0, stat / 2.0)
}

/// Regularized upper incomplete gamma function Q(a, x) = Γ(a, x) / Γ(a).
pub fn gamma_q(a: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 1.0;
    }
    if x < a + 1.0 {
        1.0 - gamma_p_series(a, x)
    } else {
        gamma_q_continued_fraction(a, x)
    }
}

/// ln(x^a e^-x / Γ(a)), the common prefactor of both expansions.
fn log_prefactor(a: f64, x: f64) -> f64 {
    a * x.ln() - x - libm::lgamma(a)
}

/// P(a, x) by its power series; converges fast for x < a + 1.
fn gamma_p_series(a: f64, x: f64) -> f64 {
    let mut term = 1.0 / a;
    let mut sum = term;
    let mut ap = a;
    for _ in 0..10_000 {
        ap += 1.0;
        term *= x / ap;
        sum += term;
        if term.abs() < sum.abs() * 1e-17 {
            break;
        }
    }
    (sum.ln() + log_prefactor(a, x)).exp()
}

/// Q(a, x) by Legendre's continued fraction (modified Lentz); converges fast for x ≥ a + 1.
fn gamma_q_continued_fraction(a: f64, x: f64) -> f64 {
    const TINY: f64 = 1e-300;
    let mut b = x + 1.0 - a;
    let mut c = 1.0 / TINY;
    let mut d = 1.0 / b;
    let mut h = d;
    for i in 1..10_000 {
        let an = -(i as f64) * (i as f64 - a);
        b += 2.0;
        d = an * d + b;
        if d.abs() < TINY {
            d = TINY;
        }
        c = b + an / c;
        if c.abs() < TINY {
            c = TINY;
        }
        d = 1.0 / d;
        let delta = d * c;
        h *= delta;
        if (delta - 1.0).abs() < 1e-16 {
            break;
        }
    }
    (h.ln() + log_prefactor(a, x)).exp()
}

/// ln(n!) for the exact-sum formulas.
pub fn ln_factorial(n: f64) -> f64 {
    libm::lgamma(n + 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_cdf_known_values() {
        // Values from scipy.stats.norm.cdf.
        assert!((norm_cdf(0.0) - 0.5).abs() < 1e-16);
        assert!((norm_cdf(1.959963984540054) - 0.975).abs() < 1e-15);
        assert!((norm_cdf(-3.0) - 0.0013498980316300933).abs() < 1e-17);
    }

    #[test]
    fn chi2_sf_known_values() {
        // scipy.stats.chi2.sf(x, df)
        assert!((chi2_sf(3.841458820694124, 1.0) - 0.05).abs() < 1e-14);
        assert!((chi2_sf(10.0, 4.0) - 0.04042768199451279).abs() < 1e-14);
        assert!((chi2_sf(150.0, 99.0) - 0.0007204453957169282).abs() < 1e-13);
        assert!((chi2_sf(0.5, 30.0) - 1.0).abs() < 1e-14);
        assert_eq!(chi2_sf(f64::INFINITY, 3.0), 0.0);
    }
}
