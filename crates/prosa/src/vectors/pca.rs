//! Two-dimensional maps of chosen words: the words' vectors centred and projected on their
//! first two principal components (as scikit-learn's `PCA(n_components=2)`, signs fixed so the
//! largest loading of each component is positive).

use super::WordVectors;
use crate::error::{Error, Result};

/// A word and its place on the map.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct MapPoint {
    /// The word.
    pub word: String,
    /// First principal component.
    pub x: f32,
    /// Second principal component.
    pub y: f32,
}

/// Power-iteration steps per component (the covariance is at most a few hundred wide).
const ITERATIONS: usize = 500;

impl WordVectors {
    /// The words' vectors projected on their first two principal components. Needs at least
    /// two words, all in the vocabulary.
    pub fn pca_map(&self, words: &[&str]) -> Result<Vec<MapPoint>> {
        if words.len() < 2 {
            return Err(Error::config("words", "a map needs at least two words"));
        }
        let dim = self.dim;
        let mut rows: Vec<Vec<f64>> = Vec::with_capacity(words.len());
        for w in words {
            let v = self.get(w).ok_or_else(|| self.unknown(w))?;
            rows.push(v.iter().map(|&x| x as f64).collect());
        }
        let n = rows.len() as f64;
        let mean: Vec<f64> = (0..dim)
            .map(|j| rows.iter().map(|r| r[j]).sum::<f64>() / n)
            .collect();
        for r in &mut rows {
            r.iter_mut().zip(&mean).for_each(|(x, m)| *x -= m);
        }
        let mut covariance = vec![0f64; dim * dim];
        for r in &rows {
            for i in 0..dim {
                for j in 0..dim {
                    covariance[i * dim + j] += r[i] * r[j];
                }
            }
        }
        let first = leading_eigenvector(&covariance, dim);
        deflate(&mut covariance, dim, &first);
        let second = leading_eigenvector(&covariance, dim);
        Ok(words
            .iter()
            .zip(&rows)
            .map(|(w, r)| MapPoint {
                word: w.to_string(),
                x: dot(r, &first) as f32,
                y: dot(r, &second) as f32,
            })
            .collect())
    }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// The unit eigenvector of the largest eigenvalue of a symmetric matrix, by power iteration
/// from a fixed start, its largest entry made positive.
fn leading_eigenvector(matrix: &[f64], dim: usize) -> Vec<f64> {
    let mut v: Vec<f64> = (0..dim).map(|i| 1.0 + (i as f64 * 0.618).fract()).collect();
    for _ in 0..ITERATIONS {
        let mut next: Vec<f64> = (0..dim)
            .map(|i| dot(&matrix[i * dim..(i + 1) * dim], &v))
            .collect();
        let norm = dot(&next, &next).sqrt();
        if norm == 0.0 {
            break;
        }
        next.iter_mut().for_each(|x| *x /= norm);
        v = next;
    }
    let norm = dot(&v, &v).sqrt().max(f64::MIN_POSITIVE);
    v.iter_mut().for_each(|x| *x /= norm);
    let largest = v
        .iter()
        .copied()
        .fold(0f64, |a, x| if x.abs() > a.abs() { x } else { a });
    if largest < 0.0 {
        v.iter_mut().for_each(|x| *x = -*x);
    }
    v
}

/// Removes the component along unit vector `v`: M − (vᵀMv)·vvᵀ.
fn deflate(matrix: &mut [f64], dim: usize, v: &[f64]) {
    let mv: Vec<f64> = (0..dim)
        .map(|i| dot(&matrix[i * dim..(i + 1) * dim], v))
        .collect();
    let eigenvalue = dot(v, &mv);
    for i in 0..dim {
        for j in 0..dim {
            matrix[i * dim + j] -= eigenvalue * v[i] * v[j];
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn points_spread_along_the_first_axis_first() {
        // Four words on a line along (1, 1, 0) with a small bump along (0, 0, 1).
        let words: Vec<String> = ["a", "b", "c", "d"].iter().map(|s| s.to_string()).collect();
        let values = vec![
            0.0, 0.0, 0.0, //
            1.0, 1.0, 0.1, //
            2.0, 2.0, 0.0, //
            3.0, 3.0, 0.1,
        ];
        let v = WordVectors::from_parts(words, 3, values, Path::new("toy")).unwrap();
        let map = v.pca_map(&["a", "b", "c", "d"]).unwrap();
        let xs: Vec<f32> = map.iter().map(|p| p.x).collect();
        // Spacing √2 along the line, centred.
        let h = std::f32::consts::FRAC_1_SQRT_2;
        for (x, want) in xs.iter().zip([-3.0 * h, -h, h, 3.0 * h]) {
            assert!((x.abs() - want.abs()).abs() < 1e-3, "{xs:?}");
        }
        assert!(map.iter().all(|p| p.y.abs() < 0.1));
        assert!(v.pca_map(&["a", "zebra"]).is_err());
        assert!(v.pca_map(&["a"]).is_err());
    }
}
