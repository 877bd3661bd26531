//! The little linear algebra the clustering detectors need: covariance, a symmetric
//! eigen-decomposition (cyclic Jacobi; the matrices are at most a few hundred wide), PCA and
//! seeded 2-means.

use crate::rng::Rng;

/// Column means and the covariance (`d × d`, row-major) of `n × d` data.
pub fn covariance(x: &[f32], d: usize) -> (Vec<f64>, Vec<f64>) {
    let n = (x.len() / d.max(1)).max(1);
    let mut mean = vec![0.0f64; d];
    for row in x.chunks(d) {
        for (m, v) in mean.iter_mut().zip(row) {
            *m += *v as f64 / n as f64;
        }
    }
    let mut cov = vec![0.0f64; d * d];
    for row in x.chunks(d) {
        let c: Vec<f64> = row.iter().zip(&mean).map(|(v, m)| *v as f64 - m).collect();
        for i in 0..d {
            for j in i..d {
                cov[i * d + j] += c[i] * c[j] / n as f64;
            }
        }
    }
    for i in 0..d {
        for j in 0..i {
            cov[i * d + j] = cov[j * d + i];
        }
    }
    (mean, cov)
}

/// Eigenvalues (descending) and eigenvectors (rows) of a symmetric matrix.
pub fn eigh(a: &[f64], d: usize) -> (Vec<f64>, Vec<Vec<f64>>) {
    let mut a = a.to_vec();
    let mut v = vec![0.0f64; d * d];
    for i in 0..d {
        v[i * d + i] = 1.0;
    }
    for _sweep in 0..60 {
        let off: f64 = (0..d)
            .flat_map(|i| (0..d).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| a[i * d + j].powi(2))
            .sum();
        if off < 1e-18 {
            break;
        }
        for p in 0..d {
            for q in p + 1..d {
                let apq = a[p * d + q];
                if apq.abs() < 1e-300 {
                    continue;
                }
                let theta = (a[q * d + q] - a[p * d + p]) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..d {
                    let akp = a[k * d + p];
                    let akq = a[k * d + q];
                    a[k * d + p] = c * akp - s * akq;
                    a[k * d + q] = s * akp + c * akq;
                }
                for k in 0..d {
                    let apk = a[p * d + k];
                    let aqk = a[q * d + k];
                    a[p * d + k] = c * apk - s * aqk;
                    a[q * d + k] = s * apk + c * aqk;
                }
                for k in 0..d {
                    let vkp = v[k * d + p];
                    let vkq = v[k * d + q];
                    v[k * d + p] = c * vkp - s * vkq;
                    v[k * d + q] = s * vkp + c * vkq;
                }
            }
        }
    }
    let mut order: Vec<usize> = (0..d).collect();
    order.sort_by(|&i, &j| a[j * d + j].total_cmp(&a[i * d + i]));
    let vals = order.iter().map(|&i| a[i * d + i]).collect();
    let vecs = order
        .iter()
        .map(|&i| (0..d).map(|k| v[k * d + i]).collect())
        .collect();
    (vals, vecs)
}

/// Projects `n × d` data on its top `k` principal components (centred), `n × k`.
pub fn pca(x: &[f32], d: usize, k: usize) -> Vec<f64> {
    let (mean, cov) = covariance(x, d);
    let (_, vecs) = eigh(&cov, d);
    let k = k.min(d);
    let mut out = Vec::with_capacity(x.len() / d.max(1) * k);
    for row in x.chunks(d) {
        for v in vecs.iter().take(k) {
            out.push(
                row.iter()
                    .zip(&mean)
                    .zip(v)
                    .map(|((x, m), v)| (*x as f64 - m) * v)
                    .sum(),
            );
        }
    }
    out
}

fn dist2(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum()
}

/// 2-means with k-means++ seeding and `restarts` tries; returns the assignment of the best
/// (lowest inertia) run.
pub fn two_means(x: &[f64], d: usize, restarts: usize, rng: &mut Rng) -> Vec<u8> {
    let n = x.len() / d.max(1);
    if n < 2 {
        return vec![0; n];
    }
    let row = |i: usize| &x[i * d..(i + 1) * d];
    let mut best: Option<(f64, Vec<u8>)> = None;
    for _ in 0..restarts.max(1) {
        let c0 = row(rng.below(n)).to_vec();
        let w: Vec<f64> = (0..n).map(|i| dist2(row(i), &c0)).collect();
        let total: f64 = w.iter().sum();
        let mut pick = rng.f32() as f64 * total;
        let mut j = 0;
        while j + 1 < n && pick > w[j] {
            pick -= w[j];
            j += 1;
        }
        let mut cs = [c0, row(j).to_vec()];
        let mut assign = vec![0u8; n];
        for _ in 0..100 {
            let mut changed = false;
            for i in 0..n {
                let a = if dist2(row(i), &cs[0]) <= dist2(row(i), &cs[1]) {
                    0
                } else {
                    1
                };
                if assign[i] != a {
                    assign[i] = a;
                    changed = true;
                }
            }
            for (c, centre) in cs.iter_mut().enumerate() {
                let members: Vec<usize> = (0..n).filter(|&i| assign[i] as usize == c).collect();
                if members.is_empty() {
                    continue;
                }
                centre.iter_mut().for_each(|v| *v = 0.0);
                for &i in &members {
                    for (v, x) in centre.iter_mut().zip(row(i)) {
                        *v += x / members.len() as f64;
                    }
                }
            }
            if !changed {
                break;
            }
        }
        let inertia: f64 = (0..n).map(|i| dist2(row(i), &cs[assign[i] as usize])).sum();
        if best.as_ref().is_none_or(|b| inertia < b.0) {
            best = Some((inertia, assign));
        }
    }
    best.map(|b| b.1).unwrap_or_default()
}

/// Mean silhouette of a 2-cluster assignment, on at most `cap` evenly spaced samples (the
/// exact value is quadratic in n).
pub fn silhouette(x: &[f64], d: usize, assign: &[u8], cap: usize) -> f64 {
    let n = assign.len();
    let step = (n / cap.max(1)).max(1);
    let idx: Vec<usize> = (0..n).step_by(step).collect();
    let row = |i: usize| &x[i * d..(i + 1) * d];
    let mut total = 0.0;
    let mut count = 0;
    for &i in &idx {
        let (mut a, mut na, mut b, mut nb) = (0.0, 0, 0.0, 0);
        for &j in &idx {
            if i == j {
                continue;
            }
            let dd = dist2(row(i), row(j)).sqrt();
            if assign[j] == assign[i] {
                a += dd;
                na += 1;
            } else {
                b += dd;
                nb += 1;
            }
        }
        if na == 0 || nb == 0 {
            continue;
        }
        let (a, b) = (a / na as f64, b / nb as f64);
        total += (b - a) / a.max(b).max(1e-12);
        count += 1;
    }
    if count == 0 {
        0.0
    } else {
        total / count as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eigh_diagonalises() {
        let a = [2.0, 1.0, 1.0, 2.0];
        let (vals, vecs) = eigh(&a, 2);
        assert!((vals[0] - 3.0).abs() < 1e-9 && (vals[1] - 1.0).abs() < 1e-9);
        assert!((vecs[0][0].abs() - vecs[0][1].abs()).abs() < 1e-9);
    }

    #[test]
    fn two_means_separates_blobs() {
        let mut x = Vec::new();
        for i in 0..20 {
            x.extend([if i < 15 { 0.0 } else { 10.0 }, (i % 3) as f64 * 0.1]);
        }
        let a = two_means(&x, 2, 3, &mut Rng::new(1));
        assert!(a[..15].iter().all(|&v| v == a[0]));
        assert!(a[15..].iter().all(|&v| v != a[0]));
        assert!(silhouette(&x, 2, &a, 100) > 0.9);
    }
}
