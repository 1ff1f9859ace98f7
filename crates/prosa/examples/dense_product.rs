//! GFLOP/s of the packed dense products ([`prosa::nn::dense_panels`]) at an encoder batch's
//! shapes: all-MiniLM-L6-v2's four projections (384 → 1,152 / 384 / 1,536 and 1,536 → 384)
//! over 32 tweets of ~30 tokens (960 rows), as the sentence-embedding benchmark runs them.
//! Compare with `--example fma_peak`.
//!
//! `RAYON_NUM_THREADS=2 cargo run --release -p prosa --example dense_product [ROWS]`

use std::time::Instant;

use candle_core::{Device, Tensor};
use prosa::nn::dense_panels::{product, PanelCache};

fn main() -> prosa::Result<()> {
    let rows: usize = std::env::args()
        .nth(1)
        .map_or(960, |r| r.parse().expect("ROWS: a number"));
    let device = Device::Cpu;
    let shapes: Vec<(usize, usize)> = match std::env::args().nth(2) {
        Some(list) => list
            .split(',')
            .map(|s| {
                let (o, i) = s.split_once('x').expect("OUTPUTSxINPUTS");
                (o.parse().expect("outputs"), i.parse().expect("inputs"))
            })
            .collect(),
        None => vec![(1152, 384), (384, 384), (1536, 384), (384, 1536)],
    };
    let mut total_flops = 0.0;
    let mut total_seconds = 0.0;
    for (outputs, inputs) in shapes {
        let x = Tensor::randn(0f32, 1.0, (rows, inputs), &device)?;
        let w = Tensor::randn(0f32, 0.05, (outputs, inputs), &device)?;
        let b = Tensor::zeros(outputs, candle_core::DType::F32, &device)?;
        let cache = PanelCache::default();
        let flops = 2.0 * (rows * outputs * inputs) as f64;
        let reps = (4e9 / flops).ceil() as usize;
        product(&x, &w, Some(&b), true, &cache)?.expect("an AVX-512F CPU");
        // The median of nine timings: this machine's neighbours come and go.
        let mut timings = Vec::new();
        for _ in 0..9 {
            let start = Instant::now();
            for _ in 0..reps {
                product(&x, &w, Some(&b), true, &cache)?;
            }
            timings.push(start.elapsed().as_secs_f64() / reps as f64);
        }
        timings.sort_by(f64::total_cmp);
        let seconds = timings[timings.len() / 2];
        total_flops += flops;
        total_seconds += seconds;
        println!(
            "{rows} × {inputs} → {outputs}: {:.1} GFLOP/s",
            flops / seconds / 1e9
        );
    }
    println!("all: {:.1} GFLOP/s", total_flops / total_seconds / 1e9);
    Ok(())
}
