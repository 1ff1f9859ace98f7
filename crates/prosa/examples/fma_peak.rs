//! The f32 FMA peak of this machine's cores: independent AVX-512 multiply-adds on values held
//! in registers (no memory traffic), one thread per core, as GFLOP/s. The README's bounds on
//! products (Marian beam search, MiniLM embeddings, F16 prompts) are fractions of this figure.
//!
//! `cargo run --release -p prosa --example fma_peak [THREADS]` (default: 1, then 2).

use std::time::Instant;

/// Iterations per thread: twelve 16-lane multiply-adds each, 384 flops.
const ITERATIONS: u64 = 200_000_000;

#[cfg(not(target_arch = "x86_64"))]
fn main() {
    eprintln!("an x86-64 measurement: AVX-512 multiply-adds");
}

#[cfg(target_arch = "x86_64")]
fn main() {
    let counts: Vec<usize> = match std::env::args().nth(1) {
        Some(n) => vec![n.parse().expect("THREADS: a number of threads")],
        None => vec![1, 2],
    };
    if !std::is_x86_feature_detected!("avx512f") {
        eprintln!("this CPU has no AVX-512F; the loop measures its 512-bit FMA throughput");
        return;
    }
    for threads in counts {
        let start = Instant::now();
        std::thread::scope(|s| {
            for _ in 0..threads {
                // SAFETY: AVX-512F was detected above.
                s.spawn(|| std::hint::black_box(unsafe { x86::fma_loop(ITERATIONS) }));
            }
        });
        let seconds = start.elapsed().as_secs_f64();
        let flops = (ITERATIONS * 12 * 16 * 2) as f64 * threads as f64;
        println!(
            "{threads} thread(s): {:.1} GFLOP/s ({:.1} per thread, {seconds:.2} s)",
            flops / seconds / 1e9,
            flops / seconds / 1e9 / threads as f64
        );
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// Twelve independent chains of 16-lane multiply-adds (more than the FMA latency times its
    /// throughput), so the units never wait; returns a value that depends on all of them.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn fma_loop(iterations: u64) -> f32 {
        let scale = _mm512_set1_ps(0.999_999);
        let step = _mm512_set1_ps(1e-7);
        let mut acc = [_mm512_setzero_ps(); 12];
        for _ in 0..iterations {
            for a in acc.iter_mut() {
                *a = _mm512_fmadd_ps(*a, scale, step);
            }
        }
        acc.iter().map(|&a| _mm512_reduce_add_ps(a)).sum()
    }
}
