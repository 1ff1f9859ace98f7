//! Plots people would rather look at than read: learning curves, the confusion matrix and the
//! class distribution, as PNG files drawn with `plotters` and an embedded DejaVu Sans font (so
//! no system fonts are needed). Plots are drawn into memory and encoded with the `png` crate
//! (plotters' own file encoder would bring the whole `image` crate, JPEG and BMP included, into
//! the build), then written atomically.

mod alignment;
mod attention_grid;
mod compare;
mod word_map;

use std::path::Path;
use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::error::{Error, Result};
use crate::metrics::ConfusionMatrix;
use crate::train::History;

pub use alignment::alignment_png;
pub use attention_grid::attention_grid_png;
pub use compare::compare_runs_png;
pub use word_map::word_map_png;

static FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");
static REGISTER: Once = Once::new();

fn register_font() {
    REGISTER.call_once(|| {
        // The font is compiled in and known to be valid; a failure would only lose the text.
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
}

fn plot_error(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Plot {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

type Area<'a> = DrawingArea<BitMapBackend<'a>, Shift>;

fn draw_png(
    path: &Path,
    size: (u32, u32),
    draw: impl FnOnce(&Area) -> std::result::Result<(), String>,
) -> Result<()> {
    register_font();
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        crate::fsio::create_dir(parent)?;
    }
    let mut pixels = vec![0u8; size.0 as usize * size.1 as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut pixels, size).into_drawing_area();
        root.fill(&WHITE).map_err(|e| plot_error(path, e))?;
        draw(&root).map_err(|e| plot_error(path, e))?;
        root.present().map_err(|e| plot_error(path, e))?;
    }
    let png = encode_png(&pixels, size).map_err(|e| plot_error(path, e))?;
    crate::fsio::write_atomic(path, &png)
}

/// PNG bytes of an RGB image (3 bytes a pixel, rows top to bottom).
fn encode_png(rgb: &[u8], (width, height): (u32, u32)) -> std::result::Result<Vec<u8>, String> {
    let mut bytes = Vec::new();
    let mut encoder = png::Encoder::new(&mut bytes, width, height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().map_err(s)?;
    writer.write_image_data(rgb).map_err(s)?;
    writer.finish().map_err(s)?;
    Ok(bytes)
}

fn s<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

/// Heat colour from white (0) to deep blue (1).
fn blues(t: f64) -> RGBColor {
    let t = t.clamp(0.0, 1.0);
    let lerp = |a: f64, b: f64| (a + (b - a) * t) as u8;
    RGBColor(lerp(247.0, 8.0), lerp(251.0, 48.0), lerp(255.0, 107.0))
}

/// Draws the confusion matrix (rows: true class, columns: predicted) with counts in each cell.
pub fn confusion_matrix_png(
    cm: &ConfusionMatrix,
    names: &[String],
    title: &str,
    path: &Path,
) -> Result<()> {
    let k = names.len().max(1);
    let max = cm
        .counts
        .iter()
        .flatten()
        .copied()
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    draw_png(path, (640, 560), |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, ("sans-serif", 22))
            .margin(12)
            .x_label_area_size(50)
            .y_label_area_size(110)
            .build_cartesian_2d((0..k - 1).into_segmented(), (0..k - 1).into_segmented())
            .map_err(s)?;
        let label = |v: &SegmentValue<usize>| match v {
            SegmentValue::CenterOf(i) => names.get(*i).cloned().unwrap_or_default(),
            _ => String::new(),
        };
        // Row 0 at the top, as scikit-learn draws it.
        let label_y = |v: &SegmentValue<usize>| match v {
            SegmentValue::CenterOf(i) if *i < k => {
                names.get(k - 1 - *i).cloned().unwrap_or_default()
            }
            _ => String::new(),
        };
        chart
            .configure_mesh()
            .disable_mesh()
            .x_desc("predicted")
            .y_desc("true")
            .x_label_formatter(&label)
            .y_label_formatter(&label_y)
            .label_style(("sans-serif", 15))
            .draw()
            .map_err(s)?;
        for (t, row) in cm.counts.iter().enumerate() {
            for (p, &count) in row.iter().enumerate() {
                let y = k - 1 - t;
                let shade = count as f64 / max;
                chart
                    .draw_series(std::iter::once(Rectangle::new(
                        [
                            (SegmentValue::Exact(p), SegmentValue::Exact(y)),
                            (SegmentValue::Exact(p + 1), SegmentValue::Exact(y + 1)),
                        ],
                        blues(shade).filled(),
                    )))
                    .map_err(s)?;
                let colour = if shade > 0.5 { WHITE } else { BLACK };
                chart
                    .draw_series(std::iter::once(Text::new(
                        count.to_string(),
                        (SegmentValue::CenterOf(p), SegmentValue::CenterOf(y)),
                        ("sans-serif", 20).into_font().color(&colour).pos(
                            plotters::style::text_anchor::Pos::new(
                                plotters::style::text_anchor::HPos::Center,
                                plotters::style::text_anchor::VPos::Center,
                            ),
                        ),
                    )))
                    .map_err(s)?;
            }
        }
        Ok(())
    })
}

/// Draws a bar chart of class counts, like the BERT notebook's class-distribution plot.
pub fn class_distribution_png(classes: &[(String, usize)], title: &str, path: &Path) -> Result<()> {
    let k = classes.len().max(1);
    let max = classes.iter().map(|c| c.1).max().unwrap_or(1).max(1);
    draw_png(path, (640, 420), |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, ("sans-serif", 22))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d((0..k - 1).into_segmented(), 0..(max + max / 10 + 1))
            .map_err(s)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .y_desc("rows")
            .x_label_formatter(&|v| match v {
                SegmentValue::CenterOf(i) => {
                    classes.get(*i).map(|c| c.0.clone()).unwrap_or_default()
                }
                _ => String::new(),
            })
            .label_style(("sans-serif", 15))
            .draw()
            .map_err(s)?;
        chart
            .draw_series(classes.iter().enumerate().map(|(i, (_, n))| {
                let colour = Palette99::pick(i).to_rgba();
                let mut bar = Rectangle::new(
                    [
                        (SegmentValue::Exact(i), 0),
                        (SegmentValue::Exact(i + 1), *n),
                    ],
                    colour.filled(),
                );
                bar.set_margin(0, 0, 20, 20);
                bar
            }))
            .map_err(s)?;
        chart
            .draw_series(classes.iter().enumerate().map(|(i, (_, n))| {
                Text::new(
                    format!("{n}"),
                    (SegmentValue::CenterOf(i), *n + max / 40),
                    ("sans-serif", 15),
                )
            }))
            .map_err(s)?;
        Ok(())
    })
}

/// Draws learning curves: training vs validation loss on the left, validation metrics
/// (accuracy, macro-F1, …) on the right, per epoch.
pub fn learning_curves_png(history: &History, title: &str, path: &Path) -> Result<()> {
    let losses = [
        ("train_loss", history.series("train_loss")),
        ("eval_loss", history.series("eval_loss")),
    ];
    // Perplexity is shown only when it is the sole validation metric (a language model); beside
    // BLEU or accuracy its scale would flatten them.
    let names: Vec<String> = history
        .metric_names()
        .into_iter()
        .filter(|m| !m.ends_with("loss"))
        .collect();
    let only_perplexity = names.iter().all(|m| m.ends_with("perplexity"));
    let metrics: Vec<(String, Vec<(f64, f64)>)> = names
        .into_iter()
        .filter(|m| only_perplexity || !m.ends_with("perplexity"))
        .map(|m| {
            let series = history.series(&m);
            (m, series)
        })
        .collect();
    // Scores in [0, 1] keep that range; BLEU (0–100) and perplexities get their own.
    let metric_max = metrics
        .iter()
        .flat_map(|(_, s)| s.iter().map(|p| p.1))
        .fold(0.0, f64::max);
    let metric_range = if metric_max > 1.0 {
        0.0..metric_max * 1.1
    } else {
        0.0..1.0
    };
    let max_epoch = history
        .entries
        .iter()
        .map(|e| e.epoch)
        .fold(0.0, f64::max)
        .max(1e-9);
    draw_png(path, (1100, 440), |root| {
        let root = root.titled(title, ("sans-serif", 22)).map_err(s)?;
        let (left, right) = root.split_horizontally(550);
        let all_loss: Vec<f64> = losses
            .iter()
            .flat_map(|(_, v)| v.iter().map(|p| p.1))
            .filter(|v| v.is_finite())
            .collect();
        let lo = all_loss
            .iter()
            .copied()
            .fold(f64::INFINITY, f64::min)
            .min(0.0);
        let hi = all_loss.iter().copied().fold(0.0, f64::max) * 1.1 + 1e-9;
        curve_panel(
            &left,
            "loss",
            &losses
                .iter()
                .map(|(n, v)| (n.to_string(), v.clone()))
                .collect::<Vec<_>>(),
            max_epoch,
            lo..hi,
        )?;
        curve_panel(
            &right,
            "validation metrics",
            &metrics,
            max_epoch,
            metric_range,
        )?;
        Ok(())
    })
}

/// One panel of line series against the epoch.
pub(super) fn curve_panel(
    area: &Area,
    y_desc: &str,
    series: &[(String, Vec<(f64, f64)>)],
    max_epoch: f64,
    y: std::ops::Range<f64>,
) -> std::result::Result<(), String> {
    let mut chart = ChartBuilder::on(area)
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(55)
        .build_cartesian_2d(0.0..max_epoch * 1.02, y)
        .map_err(s)?;
    chart
        .configure_mesh()
        .x_desc("epoch")
        .y_desc(y_desc)
        .label_style(("sans-serif", 14))
        .draw()
        .map_err(s)?;
    for (i, (name, points)) in series.iter().enumerate() {
        if points.is_empty() {
            continue;
        }
        let colour = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(
                points.iter().copied(),
                colour.stroke_width(2),
            ))
            .map_err(s)?
            .label(name.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], colour.stroke_width(2))
            });
        chart
            .draw_series(points.iter().map(|&p| Circle::new(p, 3, colour.filled())))
            .map_err(s)?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font(("sans-serif", 14))
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(s)?;
    Ok(())
}

/// Diverging colour for a state value in [-1, 1]: blue (negative), white (0), red (positive).
fn diverging(v: f64) -> RGBColor {
    let t = v.clamp(-1.0, 1.0);
    let lerp = |a: f64, b: f64, t: f64| (a + (b - a) * t) as u8;
    if t < 0.0 {
        let t = -t;
        RGBColor(
            lerp(255.0, 33.0, t),
            lerp(255.0, 102.0, t),
            lerp(255.0, 172.0, t),
        )
    } else {
        RGBColor(
            lerp(255.0, 178.0, t),
            lerp(255.0, 24.0, t),
            lerp(255.0, 43.0, t),
        )
    }
}

/// The hidden state read word by word, like the notebook's `plot_internal_states`: one column
/// per word (labelled below), one row per hidden dimension, coloured by value; above each
/// column, the model's prediction after reading up to that word.
pub fn hidden_states_png(
    states: &crate::models::rnn::HiddenStates,
    title: &str,
    path: &Path,
) -> Result<()> {
    let steps = states.tokens.len().max(1);
    let dims = states.states.first().map_or(1, Vec::len).max(1);
    let width = (160 + 70 * steps as u32).max(520);
    let height = (200 + 14 * dims as u32).clamp(360, 1400);
    draw_png(path, (width, height), |outer| {
        let root = &outer.titled(title, ("sans-serif", 20)).map_err(s)?;
        let mut chart = ChartBuilder::on(root)
            .margin(12)
            .margin_top(40)
            .x_label_area_size(60)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..steps as f64, 0.0..dims as f64)
            .map_err(s)?;
        chart
            .configure_mesh()
            .disable_mesh()
            .x_labels(0)
            .y_desc("hidden dimension")
            .y_labels(dims.min(16))
            .y_label_formatter(&|v| format!("{}", *v as usize))
            .label_style(("sans-serif", 13))
            .draw()
            .map_err(s)?;
        for (t, column) in states.states.iter().enumerate() {
            chart
                .draw_series(column.iter().enumerate().map(|(j, &v)| {
                    let (x, y) = (t as f64, j as f64);
                    Rectangle::new([(x, y), (x + 1.0, y + 1.0)], diverging(v as f64).filled())
                }))
                .map_err(s)?;
        }
        let centre = plotters::style::text_anchor::Pos::new(
            plotters::style::text_anchor::HPos::Center,
            plotters::style::text_anchor::VPos::Center,
        );
        for (t, token) in states.tokens.iter().enumerate() {
            let (x, _) = chart.backend_coord(&(t as f64 + 0.5, 0.0));
            let (_, bottom) = chart.backend_coord(&(0.0, 0.0));
            let (_, top) = chart.backend_coord(&(0.0, dims as f64));
            // backend_coord gives absolute pixels: draw on the untitled area.
            outer
                .draw(&Text::new(
                    token.clone(),
                    (x, bottom + 18),
                    ("sans-serif", 15).into_font().color(&BLACK).pos(centre),
                ))
                .map_err(s)?;
            if let Some(p) = states.outputs.get(t) {
                let best = crate::metrics::argmax_rows(std::slice::from_ref(p))[0] as usize;
                let label = states.labels.get(best).map(String::as_str).unwrap_or("?");
                let short: String = label.chars().take(4).collect();
                let text = format!("{short} {:.2}", p[best]);
                outer
                    .draw(&Text::new(
                        text,
                        (x, top - 14),
                        ("sans-serif", 13).into_font().color(&BLACK).pos(centre),
                    ))
                    .map_err(s)?;
            }
        }
        Ok(())
    })
}
