//! The alignment heatmap of an attention model (Bahdanau et al. 2015, Figure 3): source tokens
//! across, generated target tokens down, each cell the weight the decoder gave that source
//! token while writing that target token.

use std::path::Path;

use plotters::prelude::*;

use super::{blues, draw_png, s};
use crate::error::Result;

/// Draws `weights[target][source]` with the tokens as labels.
pub fn alignment_png(
    source: &[String],
    target: &[String],
    weights: &[Vec<f32>],
    title: &str,
    path: &Path,
) -> Result<()> {
    let (cols, rows) = (source.len().max(1), target.len().max(1));
    let cell = 46u32;
    let (left, top) = (170u32, 150u32);
    let size = (
        left + cell * cols as u32 + 30,
        top + cell * rows as u32 + 30,
    );
    draw_png(path, size, |root| {
        root.draw(&Text::new(
            title.to_string(),
            (12, 12),
            ("sans-serif", 20).into_font().color(&BLACK),
        ))
        .map_err(s)?;
        for (t, row) in weights.iter().enumerate() {
            for (j, &w) in row.iter().enumerate() {
                let (x, y) = (left + cell * j as u32, top + cell * t as u32);
                root.draw(&Rectangle::new(
                    [(x as i32, y as i32), ((x + cell) as i32, (y + cell) as i32)],
                    blues(w as f64).filled(),
                ))
                .map_err(s)?;
            }
        }
        let font = ("sans-serif", 15).into_font().color(&BLACK);
        for (j, token) in source.iter().enumerate() {
            let x = (left + cell * j as u32 + cell / 2) as i32;
            // Source tokens written upwards above their column.
            root.draw(&Text::new(
                token.clone(),
                (x - 6, top as i32 - 8),
                font.clone().transform(FontTransform::Rotate270),
            ))
            .map_err(s)?;
        }
        for (t, token) in target.iter().enumerate() {
            let y = (top + cell * t as u32 + cell / 2) as i32 - 8;
            root.draw(&Text::new(token.clone(), (10, y), font.clone()))
                .map_err(s)?;
        }
        Ok(())
    })
}
