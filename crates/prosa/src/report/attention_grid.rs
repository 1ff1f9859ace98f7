//! Every head of every layer at a glance (bertviz's "model view"): one small heatmap per
//! (layer, head), layers down and heads across, each row of a map a query token and each
//! column a key token, darker for more weight.

use std::path::Path;

use plotters::prelude::*;

use super::{blues, draw_png, s};
use crate::error::Result;

/// Side of one head's map, in pixels.
const PANEL: u32 = 150;
/// Space between maps.
const GAP: u32 = 14;

/// Draws `maps[layer][head][query][key]` as a grid of heatmaps titled `title`, the first
/// row labelled layer `first_layer`; `subtitle` says what the rows and columns are.
pub fn attention_grid_png(
    maps: &[Vec<Vec<Vec<f32>>>],
    first_layer: usize,
    title: &str,
    subtitle: &str,
    path: &Path,
) -> Result<()> {
    let layers = maps.len().max(1) as u32;
    let heads = maps.iter().map(Vec::len).max().unwrap_or(1).max(1) as u32;
    let (left, top) = (80u32, 84u32);
    let size = (
        left + heads * (PANEL + GAP) + 10,
        top + layers * (PANEL + GAP) + 10,
    );
    draw_png(path, size, |root| {
        let font = |px: i32| ("sans-serif", px).into_font().color(&BLACK);
        root.draw(&Text::new(title.to_string(), (12, 10), font(20)))
            .map_err(s)?;
        root.draw(&Text::new(subtitle.to_string(), (12, 36), font(14)))
            .map_err(s)?;
        for h in 0..heads {
            let x = (left + h * (PANEL + GAP) + PANEL / 2 - 22) as i32;
            root.draw(&Text::new(
                format!("head {h}"),
                (x, top as i32 - 20),
                font(14),
            ))
            .map_err(s)?;
        }
        for (l, layer) in maps.iter().enumerate() {
            let y0 = top + l as u32 * (PANEL + GAP);
            root.draw(&Text::new(
                format!("layer {}", first_layer + l),
                (8, (y0 + PANEL / 2) as i32 - 8),
                font(14),
            ))
            .map_err(s)?;
            for (h, map) in layer.iter().enumerate() {
                let x0 = left + h as u32 * (PANEL + GAP);
                draw_map(root, map, (x0 as i32, y0 as i32))?;
            }
        }
        Ok(())
    })
}

/// One head's map in a PANEL × PANEL square at `origin`, framed.
fn draw_map(
    root: &super::Area,
    map: &[Vec<f32>],
    origin: (i32, i32),
) -> std::result::Result<(), String> {
    let rows = map.len().max(1);
    let cols = map.iter().map(Vec::len).max().unwrap_or(1).max(1);
    let edge = |i: usize, n: usize| (i as f64 * PANEL as f64 / n as f64).round() as i32;
    for (q, row) in map.iter().enumerate() {
        for (k, &w) in row.iter().enumerate() {
            let (x, y) = (origin.0 + edge(k, cols), origin.1 + edge(q, rows));
            let (x1, y1) = (origin.0 + edge(k + 1, cols), origin.1 + edge(q + 1, rows));
            root.draw(&Rectangle::new(
                [(x, y), (x1, y1)],
                blues(w as f64).filled(),
            ))
            .map_err(s)?;
        }
    }
    let far = (origin.0 + PANEL as i32, origin.1 + PANEL as i32);
    root.draw(&Rectangle::new([origin, far], RGBColor(160, 160, 160)))
        .map_err(s)
}
