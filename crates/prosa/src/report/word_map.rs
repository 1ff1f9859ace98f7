//! A map of words (2-D PCA of their vectors): each word a dot with its label, like the course's
//! figures of word-vector spaces.

use std::path::Path;

use plotters::prelude::*;

use super::{draw_png, s};
use crate::error::Result;

/// Draws `(word, x, y)` points with their labels.
pub fn word_map_png(points: &[(String, f32, f32)], title: &str, path: &Path) -> Result<()> {
    let range = |values: Vec<f32>| {
        let lo = values.iter().copied().fold(f32::INFINITY, f32::min);
        let hi = values.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let pad = ((hi - lo) * 0.12).max(1e-3);
        (lo - pad)..(hi + pad)
    };
    let xs = range(points.iter().map(|p| p.1).collect());
    let ys = range(points.iter().map(|p| p.2).collect());
    draw_png(path, (900, 700), |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, ("sans-serif", 22))
            .margin(16)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d(xs, ys)
            .map_err(s)?;
        chart
            .configure_mesh()
            .x_desc("first principal component")
            .y_desc("second principal component")
            .label_style(("sans-serif", 14))
            .draw()
            .map_err(s)?;
        chart
            .draw_series(points.iter().enumerate().map(|(i, (word, x, y))| {
                let colour = Palette99::pick(i).to_rgba();
                EmptyElement::at((*x, *y))
                    + Circle::new((0, 0), 5, colour.filled())
                    + Text::new(word.clone(), (7, -7), ("sans-serif", 17))
            }))
            .map_err(s)?;
        Ok(())
    })
}
