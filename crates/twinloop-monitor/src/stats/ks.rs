//! Two-sample Kolmogorov–Smirnov test, two-sided, as `scipy.stats.ks_2samp(method="auto")`
//! computes it: the exact null distribution when both samples have at most 10,000 values,
//! otherwise the one-sample Kolmogorov distribution `kstwo` at n = round(n1·n2 / (n1 + n2)).

use super::special::ln_factorial;

/// scipy switches from exact to asymptotic above this sample size.
const MAX_EXACT_N: usize = 10_000;

/// The KS statistic and its two-sided p-value. Both inputs must be sorted and non-empty.
pub fn ks_2samp(a: &[f64], b: &[f64]) -> (f64, f64) {
    let (n1, n2) = (a.len(), b.len());
    let (i, j) = max_ecdf_gap(a, b);
    let d = (i as f64 / n1 as f64 - j as f64 / n2 as f64).abs();
    if n1.max(n2) <= MAX_EXACT_N {
        let g = gcd(n1, n2);
        let lcm = (n1 / g) * n2;
        // The gap in units of 1/lcm is an integer; computing it exactly avoids a rounding step.
        let h = (i * (lcm / n1)).abs_diff(j * (lcm / n2));
        if h == 0 {
            return (0.0, 1.0);
        }
        let prob = if n1 == n2 {
            prob_outside_square(n1, h)
        } else {
            prob_outside_inside_method(n1, n2, g, h)
        };
        if prob.is_finite() && (0.0..=1.0).contains(&prob) {
            return (h as f64 / lcm as f64, prob);
        }
    }
    let (m, n) = (n1.max(n2) as f64, n1.min(n2) as f64);
    let en = (m * n / (m + n)).round_ties_even();
    (d, kolmogorov_sf(en as u64, d).clamp(0.0, 1.0))
}

/// Where the ECDF gap is largest: the counts (i of a, j of b) at or below that point.
fn max_ecdf_gap(a: &[f64], b: &[f64]) -> (usize, usize) {
    let (n1, n2) = (a.len() as i128, b.len() as i128);
    let (mut i, mut j) = (0usize, 0usize);
    let mut best = (0usize, 0usize, 0i128);
    while i < a.len() || j < b.len() {
        // Step past every copy of the next value on both sides: ECDFs are right-continuous.
        let x = match (a.get(i), b.get(j)) {
            (Some(&x), Some(&y)) => x.min(y),
            (Some(&x), None) => x,
            (None, Some(&y)) => y,
            (None, None) => unreachable!(),
        };
        while i < a.len() && a[i] <= x {
            i += 1;
        }
        while j < b.len() && b[j] <= x {
            j += 1;
        }
        let gap = (i as i128 * n2 - j as i128 * n1).abs();
        if gap > best.2 {
            best = (i, j, gap);
        }
    }
    (best.0, best.1)
}

fn gcd(mut a: usize, mut b: usize) -> usize {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// P(D ≥ h/n) for two samples of equal size n, as an alternating sum of binomial ratios
/// evaluated Horner-style so that no large binomial is ever formed.
fn prob_outside_square(n: usize, h: usize) -> f64 {
    let mut p = 0.0;
    let mut k = (n / h) as i64;
    let (n, h) = (n as f64, h as f64);
    while k >= 0 {
        let kh = k as f64 * h;
        let mut term = 1.0;
        for jj in 0..h as u64 {
            let jj = jj as f64;
            term = (n - kh - jj) * term / (n + kh + jj + 1.0);
        }
        p = term * (1.0 - p);
        k -= 1;
    }
    2.0 * p
}

/// P(D ≥ h/lcm) for unequal sizes: the share of lattice paths from (0,0) to (m,n) that leave the
/// band |x/m − y/n| < h/lcm, computed column by column as 1 − (inside share) directly
/// (Hodges' inside method with Viehmann's recursion for the complement), keeping only a sliding
/// window of the column.
fn prob_outside_inside_method(m: usize, n: usize, g: usize, h: usize) -> f64 {
    let (m, n) = if m < n { (n, m) } else { (m, n) };
    let (mg, ng) = ((m / g) as i64, (n / g) as i64);
    let (m, n, h) = (m as i64, n as i64, h as i64);
    let ceil_div = |a: i64, b: i64| -> i64 { (a + b - 1).div_euclid(b) };
    let mut minj: i64 = 0;
    let mut maxj: i64 = ceil_div(h, mg).min(n + 1);
    let mut curlen = maxj - minj;
    let len_a = (2 * maxj + 2).min(n + 1) as usize;
    let mut col = vec![1.0f64; len_a.max(1)];
    for v in col.iter_mut().take(maxj as usize) {
        *v = 0.0;
    }
    for i in 1..=m {
        let (lastminj, lastlen) = (minj, curlen);
        minj = ((ng * i - h).div_euclid(mg) + 1).max(0).min(n);
        maxj = ceil_div(ng * i + h, mg).min(n + 1);
        if maxj <= minj {
            return 1.0;
        }
        let mut val = if minj == 0 { 0.0 } else { 1.0 };
        for jj in 0..(maxj - minj) {
            let j = jj + minj;
            let (fi, fj) = (i as f64, j as f64);
            val = (col[(jj + minj - lastminj) as usize] * fi + val * fj) / (fi + fj);
            col[jj as usize] = val;
        }
        curlen = maxj - minj;
        if lastlen > curlen {
            let start = (maxj - minj) as usize;
            let end = (start + (lastlen - curlen) as usize).min(col.len());
            for v in &mut col[start..end] {
                *v = 1.0;
            }
        }
    }
    col[(maxj - minj - 1) as usize]
}

/// Survival function of the one-sample two-sided Kolmogorov statistic D_n (scipy's `kstwo.sf`),
/// choosing among the same algorithms as Simard & L'Ecuyer (2011) in the same regions.
pub fn kolmogorov_sf(n: u64, x: f64) -> f64 {
    if n == 0 || x.is_nan() {
        return f64::NAN;
    }
    if x >= 1.0 {
        return 0.0;
    }
    if x <= 0.0 {
        return 1.0;
    }
    let nf = n as f64;
    let t = nf * x;
    if t <= 1.0 {
        // Ruben–Gambino: exact for 1/(2n) ≤ x ≤ 1/n.
        if t <= 0.5 {
            return 1.0;
        }
        let cdf = if n <= 140 {
            (1..=n).fold(1.0, |p, i| p * (i as f64 / nf) * (2.0 * t - 1.0))
        } else {
            (ln_factorial(nf) - nf * nf.ln() + nf * (2.0 * t - 1.0).ln()).exp()
        };
        return (1.0 - cdf).clamp(0.0, 1.0);
    }
    if t >= nf - 1.0 {
        return (2.0 * (1.0 - x).powf(nf)).clamp(0.0, 1.0);
    }
    if x >= 0.5 {
        return (2.0 * smirnov(n, x)).clamp(0.0, 1.0);
    }
    let nxsq = t * x;
    if n <= 140 {
        if nxsq <= 0.754693 {
            return (1.0 - kolmogorov_cdf_durbin(n, x)).clamp(0.0, 1.0);
        }
        if nxsq <= 4.0 {
            return (1.0 - kolmogorov_cdf_pomeranz(n, x)).clamp(0.0, 1.0);
        }
        return (2.0 * smirnov(n, x)).clamp(0.0, 1.0);
    }
    if nxsq >= 370.0 {
        return 0.0;
    }
    if nxsq >= 2.2 {
        return (2.0 * smirnov(n, x)).clamp(0.0, 1.0);
    }
    let cdf = if n <= 100_000 && nf * x.powf(1.5) <= 1.4 {
        kolmogorov_cdf_durbin(n, x)
    } else {
        kolmogorov_cdf_pelz_good(n, x)
    };
    (1.0 - cdf).clamp(0.0, 1.0)
}

/// One-sided Smirnov survival function P(D⁺_n ≥ x), by the Birnbaum–Tingey sum
/// x · Σ_j C(n, j) (1 − x − j/n)^(n−j) (x + j/n)^(j−1), every term taken in logarithms.
pub fn smirnov(n: u64, x: f64) -> f64 {
    if x <= 0.0 {
        return 1.0;
    }
    if x >= 1.0 {
        return 0.0;
    }
    let nf = n as f64;
    let jmax = (nf * (1.0 - x)).floor() as u64;
    let mut sum = 0.0;
    let mut ln_binom = 0.0f64;
    for j in 0..=jmax {
        let jf = j as f64;
        if j > 0 {
            ln_binom += ((nf - jf + 1.0) / jf).ln();
        }
        let a = 1.0 - x - jf / nf;
        if a <= 0.0 {
            break;
        }
        let ln_term = ln_binom + (nf - jf) * a.ln() + (jf - 1.0) * (x + jf / nf).ln();
        sum += ln_term.exp();
    }
    (x * sum).clamp(0.0, 1.0)
}

/// Durbin's matrix method (Marsaglia–Tsang–Wang form) for P(D_n ≤ d), with explicit binary
/// exponents so the matrix power does not overflow.
fn kolmogorov_cdf_durbin(n: u64, d: f64) -> f64 {
    let nf = n as f64;
    let nd = nf * d;
    if nd <= 0.5 {
        return 0.0;
    }
    let k = nd.ceil() as usize;
    let h = k as f64 - nd;
    let m = 2 * k - 1;
    let mut w = vec![0.0; m];
    let mut v: Vec<f64> = (1..=m).map(|i| 1.0 - h.powi(i as i32)).collect();
    let mut fac = 1.0;
    for j in 1..=m {
        w[j - 1] = fac;
        fac /= j as f64;
        v[j - 1] *= fac;
    }
    let tt = (2.0 * h - 1.0).max(0.0).powi(m as i32) - 2.0 * h.powi(m as i32);
    v[m - 1] = (1.0 + tt) * fac;
    let mut hm = vec![0.0; m * m];
    for i in 1..m {
        for r in (i - 1)..m {
            hm[r * m + i] = w[r - (i - 1)];
        }
    }
    for r in 0..m {
        hm[r * m] = v[r];
    }
    for c in 0..m {
        hm[(m - 1) * m + c] = v[m - 1 - c];
    }
    let mut pw = vec![0.0; m * m];
    for i in 0..m {
        pw[i * m + i] = 1.0;
    }
    let (mut expnt, mut h_expnt) = (0i32, 0i32);
    let mut nn = n;
    while nn > 0 {
        if nn % 2 == 1 {
            pw = matmul(&pw, &hm, m);
            expnt += h_expnt;
        }
        hm = matmul(&hm, &hm, m);
        h_expnt *= 2;
        if hm[(k - 1) * m + (k - 1)].abs() > 2f64.powi(128) {
            for v in &mut hm {
                *v /= 2f64.powi(128);
            }
            h_expnt += 128;
        }
        nn /= 2;
    }
    let mut p = pw[(k - 1) * m + (k - 1)];
    for i in 1..=n {
        p = i as f64 * p / nf;
        if p.abs() < 2f64.powi(-128) {
            p *= 2f64.powi(128);
            expnt -= 128;
        }
    }
    if expnt != 0 {
        p = libm::ldexp(p, expnt);
    }
    p.clamp(0.0, 1.0)
}

fn matmul(a: &[f64], b: &[f64], m: usize) -> Vec<f64> {
    let mut out = vec![0.0; m * m];
    for i in 0..m {
        for k in 0..m {
            let aik = a[i * m + k];
            if aik == 0.0 {
                continue;
            }
            for j in 0..m {
                out[i * m + j] += aik * b[k * m + j];
            }
        }
    }
    out
}

/// Pomeranz's recursion for P(D_n ≤ x), used for small n in the middle of the range.
fn kolmogorov_cdf_pomeranz(n: u64, x: f64) -> f64 {
    let n = n as i64;
    let nf = n as f64;
    let t = nf * x;
    let ll = t.floor() as i64;
    let f = t - ll as f64;
    let g = f.min(1.0 - f);
    let ceilf = i64::from(f > 0.0);
    let roundf = i64::from(f > 0.5);
    let npwrs = (2 * (ll + 1)) as usize;
    let mut gpower = vec![1.0; npwrs];
    let mut twogpower = vec![1.0; npwrs];
    let mut onem2gpower = vec![1.0; npwrs];
    for k in 1..npwrs {
        gpower[k] = gpower[k - 1] * (g / nf) / k as f64;
        twogpower[k] = twogpower[k - 1] * (2.0 * g / nf) / k as f64;
        onem2gpower[k] = onem2gpower[k - 1] * ((1.0 - 2.0 * g) / nf) / k as f64;
    }
    let j1j2 = |i: i64| -> (i64, i64) {
        let (j1, j2) = if i == 0 {
            (-ll - ceilf - 1, ll + ceilf - 1)
        } else {
            let (half, odd) = ((i + 1) / 2, (i + 1) % 2);
            if odd == 0 {
                if half == n + 1 {
                    (n - ll - ceilf - 1, n + ll + ceilf - 1)
                } else {
                    (half - 1 - ll - roundf - 1, half + ll - 1 + ceilf - 1)
                }
            } else {
                (half - 1 - ll - 1, half + ll + roundf - 1)
            }
        };
        ((j1 + 2).max(0), j2.min(n))
    };
    let mut v0 = vec![0.0; npwrs];
    let mut v1 = vec![0.0; npwrs];
    v1[0] = 1.0;
    let (mut v0s, mut v1s) = (0i64, 0i64);
    let mut expnt = 0i32;
    let mut j1 = j1j2(0).0;
    for i in 1..(2 * n + 2) {
        let k1 = j1;
        std::mem::swap(&mut v0, &mut v1);
        std::mem::swap(&mut v0s, &mut v1s);
        v1.iter_mut().for_each(|v| *v = 0.0);
        let (next_j1, j2) = j1j2(i);
        j1 = next_j1;
        let pwrs = if i == 1 || i == 2 * n + 1 {
            &gpower
        } else if i % 2 == 1 {
            &twogpower
        } else {
            &onem2gpower
        };
        let ln2 = j2 - k1 + 1;
        if ln2 > 0 {
            let ln2 = ln2 as usize;
            let base = (k1 - v0s) as usize;
            let conv_start = (j1 - k1) as usize;
            let conv_len = (j2 - j1 + 1) as usize;
            // Only entries conv_start .. conv_start + conv_len of the full convolution are used.
            for (out, idx) in (conv_start..conv_start + conv_len).enumerate() {
                let mut s = 0.0;
                for a in 0..=idx.min(ln2 - 1) {
                    let b = idx - a;
                    if b < ln2 {
                        s += v0.get(base + a).copied().unwrap_or(0.0) * pwrs[b];
                    }
                }
                v1[out] = s;
            }
            let max = v1.iter().copied().fold(f64::MIN, f64::max);
            if 0.0 < max && max < 2f64.powi(-128) {
                v1.iter_mut().for_each(|v| *v *= 2f64.powi(128));
                expnt -= 128;
            }
            v1s = v0s + j1 - k1;
        }
    }
    let mut ans = v1[(n - v1s) as usize];
    for k in 1..=n {
        if ans.abs() > 2f64.powi(128) {
            ans *= 2f64.powi(-128);
            expnt += 128;
        }
        ans *= k as f64;
    }
    if expnt != 0 {
        ans = libm::ldexp(ans, expnt);
    }
    ans.clamp(0.0, 1.0)
}

/// Pelz–Good asymptotic series for P(D_n ≤ x), for large n.
fn kolmogorov_cdf_pelz_good(n: u64, x: f64) -> f64 {
    use std::f64::consts::PI;
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let sqrt2pi = (2.0 * PI).sqrt();
    let (pi2, pi4, pi6) = (PI * PI, PI.powi(4), PI.powi(6));
    let nf = n as f64;
    let z = nf.sqrt() * x;
    let (z2, z3, z4, z6) = (z * z, z.powi(3), z.powi(4), z.powi(6));
    let qlog = -pi2 / 8.0 / z2;
    // Below this log the series is 0 to double precision (scipy's _MIN_LOG = -708).
    if qlog < -708.0 {
        return 0.0;
    }
    let q = qlog.exp();
    let k1a = -z2;
    let k1b = pi2 / 4.0;
    let k2a = 6.0 * z6 + 2.0 * z4;
    let k2b = (2.0 * z4 - 5.0 * z2) * pi2 / 4.0;
    let k2c = pi4 * (1.0 - 2.0 * z2) / 16.0;
    let k3d = pi6 * (5.0 - 30.0 * z2) / 64.0;
    let k3c = pi4 * (-60.0 * z2 + 212.0 * z4) / 16.0;
    let k3b = pi2 * (135.0 * z4 - 96.0 * z6) / 4.0;
    let k3a = -30.0 * z6 - 90.0 * z.powi(8);
    let mut k = [0.0f64; 4];
    let maxk = (16.0 * z / PI).ceil() as i64;
    for kk in (1..=maxk).rev() {
        let m = (2 * kk - 1) as f64;
        let (m2, m4, m6) = (m * m, m.powi(4), m.powi(6));
        let qpower = q.powf(8.0 * kk as f64);
        let coeffs = [
            1.0,
            k1a + k1b * m2,
            k2a + k2b * m2 + k2c * m4,
            k3a + k3b * m2 + k3c * m4 + k3d * m6,
        ];
        for (ki, c) in k.iter_mut().zip(coeffs) {
            *ki = *ki * qpower + c;
        }
    }
    let denoms = [z, 6.0 * z4, 72.0 * z.powi(7), 6480.0 * z.powi(10)];
    for (ki, dn) in k.iter_mut().zip(denoms) {
        *ki = *ki * q * sqrt2pi / dn;
    }
    let q2 = (-pi2 / 2.0 / z2).exp();
    let (mut extra2, mut extra3) = (0.0, 0.0);
    let sqrt3z = 3f64.sqrt() * z;
    for kk in (1..=maxk).rev() {
        let ks = kk as f64;
        let qp = q2.powf(ks * ks);
        extra2 += ks * ks * qp;
        let kspi = PI * ks;
        extra3 += (sqrt3z + kspi) * (sqrt3z - kspi) * ks * ks * qp;
    }
    k[2] += extra2 * pi2 * sqrt2pi / (-36.0 * z3);
    k[3] += extra3 * pi2 * sqrt2pi / (216.0 * z6);
    let mut sum = 0.0;
    for (i, ki) in k.iter().enumerate() {
        sum += ki / nf.powf(i as f64 / 2.0);
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sorted(mut v: Vec<f64>) -> Vec<f64> {
        v.sort_by(f64::total_cmp);
        v
    }

    #[test]
    fn identical_samples_have_p_one() {
        let a = sorted((0..50).map(|i| i as f64).collect());
        let (d, p) = ks_2samp(&a, &a);
        assert_eq!(d, 0.0);
        assert_eq!(p, 1.0);
    }

    #[test]
    fn exact_values_match_scipy() {
        // scipy.stats.ks_2samp(range(10), [x + 3 for x in range(12)])
        let a: Vec<f64> = (0..10).map(|i| i as f64).collect();
        let b: Vec<f64> = (0..12).map(|i| i as f64 + 3.0).collect();
        let (d, p) = ks_2samp(&a, &b);
        assert!((d - 0.4166666666666667).abs() < 1e-15, "{d}");
        assert!((p - 0.23373839782508513).abs() < 1e-12, "{p}");
        // Equal sizes: ks_2samp(range(20), [x + 5 for x in range(20)])
        let a: Vec<f64> = (0..20).map(|i| i as f64).collect();
        let b: Vec<f64> = (0..20).map(|i| i as f64 + 5.0).collect();
        let (d, p) = ks_2samp(&a, &b);
        assert!((d - 0.25).abs() < 1e-15);
        assert!((p - 0.571336004933722).abs() < 1e-12, "{p}");
    }

    #[test]
    fn kolmogorov_sf_matches_scipy_kstwo() {
        // scipy.stats.kstwo.sf(x, n), one point in each algorithm's region.
        let cases = [
            (50000, 0.02, 8.35587873542047e-18),
            (50000, 0.005, 0.16353363492434803),
            (50000, 0.0008, 0.9999999999999997),
            (200000, 0.003, 0.0545369786611305),
            (100, 0.05, 0.9532159710635725),
            (100, 0.15, 0.019839242125643017),
            (100, 0.3, 1.7719869892662917e-08),
            (1000, 0.6, 0.0),
            (500, 0.001, 1.0),
        ];
        for (n, x, want) in cases {
            let got = kolmogorov_sf(n, x);
            assert!((got - want).abs() < 1e-12, "n={n} x={x}: {got} vs {want}");
        }
    }
}
