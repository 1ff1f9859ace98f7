//! The updates of word2vec (Mikolov et al. 2013) as gensim's `word2vec_inner` makes them: one
//! (input, output) pair or one context window at a time, negative sampling or hierarchical
//! softmax, the sigmoid looked up in a 1,000-entry table over [−6, 6] and pairs whose score falls
//! outside it skipped.
//!
//! Threads update the shared weights without locks ("Hogwild", as the original and gensim do):
//! two threads may write the same row at once, and one update may then overwrite part of
//! another — the algorithm tolerates it, and it is what makes word2vec scale with threads.

use super::vocab::Vocab;

/// Scores beyond ±MAX_EXP are skipped.
const MAX_EXP: f32 = 6.0;
/// Most negative samples per pair (`--negative` is checked against it).
pub const MAX_NEGATIVE: usize = 64;
/// Entries of the sigmoid table.
const EXP_TABLE_SIZE: usize = 1000;

/// The sigmoid over [−MAX_EXP, MAX_EXP] in `EXP_TABLE_SIZE` steps.
pub struct SigmoidTable(Vec<f32>);

impl SigmoidTable {
    /// The table.
    pub fn new() -> Self {
        Self(
            (0..EXP_TABLE_SIZE)
                .map(|i| {
                    let x = (i as f32 / EXP_TABLE_SIZE as f32 * 2.0 - 1.0) * MAX_EXP;
                    let e = x.exp();
                    e / (e + 1.0)
                })
                .collect(),
        )
    }

    /// σ(x), or `None` where |x| ≥ MAX_EXP.
    fn get(&self, x: f32) -> Option<f32> {
        if x <= -MAX_EXP || x >= MAX_EXP {
            return None;
        }
        let i = ((x + MAX_EXP) * (EXP_TABLE_SIZE as f32 / MAX_EXP / 2.0)) as usize;
        self.0.get(i).copied()
    }
}

impl Default for SigmoidTable {
    fn default() -> Self {
        Self::new()
    }
}

/// The input and output weight tables, shared by the training threads without locks.
pub struct Weights {
    /// Input vectors (the word vectors), rows of `dim`.
    pub input: *mut f32,
    /// Output vectors of negative sampling (`syn1neg`), rows of `dim`.
    pub negative: *mut f32,
    /// Output vectors of the Huffman tree's inner nodes (`syn1`), rows of `dim`.
    pub tree: *mut f32,
    /// Row width.
    pub dim: usize,
}

// SAFETY: the pointers stay valid for the training (the tables outlive the threads, which are
// scoped); concurrent writes to one row are the accepted races of Hogwild training, on plain
// f32 values that any bit pattern makes valid.
unsafe impl Send for Weights {}
unsafe impl Sync for Weights {}

impl Weights {
    /// Asks the CPU to bring row `r` of `table` into cache (a hint: no effect on results).
    #[inline(always)]
    fn prefetch(&self, table: *mut f32, r: u32) {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
            // 16 floats per 64-byte cache line.
            for offset in (0..self.dim).step_by(16) {
                // SAFETY: prefetching is a hint that never faults; the address is computed
                // with wrapping arithmetic, never dereferenced.
                unsafe {
                    _mm_prefetch::<_MM_HINT_T0>(
                        table.wrapping_add(r as usize * self.dim + offset) as *const i8
                    )
                };
            }
        }
    }

    /// Row `r` of a table as a mutable slice.
    ///
    /// # Safety
    /// `table` is one of the pointers above and `r` a row it has.
    #[allow(clippy::mut_from_ref)]
    unsafe fn row(&self, table: *mut f32, r: u32) -> &mut [f32] {
        std::slice::from_raw_parts_mut(table.add(r as usize * self.dim), self.dim)
    }
}

/// One thread's state: its random numbers (word2vec's linear congruential generator) and the
/// work buffers.
pub struct Worker {
    /// The generator's state.
    pub random: u64,
    work: Vec<f32>,
    hidden: Vec<f32>,
}

impl Worker {
    /// A worker seeded with `seed`, for rows of `dim`.
    pub fn new(seed: u64, dim: usize) -> Self {
        Self {
            random: seed,
            work: vec![0.0; dim],
            hidden: vec![0.0; dim],
        }
    }

    /// The next random number.
    pub fn next_random(&mut self) -> u64 {
        self.random = self.random.wrapping_mul(25_214_903_917).wrapping_add(11);
        self.random
    }
}

/// Settings every update reads.
pub struct Step<'a> {
    /// The vocabulary (negative samples, Huffman codes).
    pub vocab: &'a Vocab,
    /// The sigmoid table.
    pub sigmoid: &'a SigmoidTable,
    /// Negative samples per pair (0: none).
    pub negative: usize,
    /// Learning rate of this stretch of training.
    pub alpha: f32,
}

/// `a · b` over 16 independent lanes (a vector register's worth), which the compiler turns into
/// SIMD multiply-adds: a single running sum would chain every addition to the previous one.
#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    const LANES: usize = 16;
    let mut lanes = [0f32; LANES];
    let (xs, ys) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: f32 = xs
        .remainder()
        .iter()
        .zip(ys.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in xs.zip(ys) {
        for i in 0..LANES {
            lanes[i] += x[i] * y[i];
        }
    }
    lanes.iter().sum::<f32>() + tail
}

/// `y += alpha · x`.
#[inline(always)]
fn axpy(alpha: f32, x: &[f32], y: &mut [f32]) {
    for (y, x) in y.iter_mut().zip(x) {
        *y += alpha * x;
    }
}

/// Accumulates into `work` the error of predicting `target` (and negatives) from `input`,
/// updating the output rows on the way.
#[inline(always)]
fn output_layer(s: &Step, w: &Weights, worker: &mut Worker, target: u32, input: &[f32]) {
    // Negative sampling: the target and the samples drawn first (the same random sequence as
    // drawing them one by one), their rows fetched into cache while the first is computed.
    if s.negative > 0 {
        let mut rows = [0u32; MAX_NEGATIVE + 1];
        rows[0] = target;
        let mut n = 1;
        for _ in 0..s.negative {
            let sample = s.vocab.draw(worker.next_random() >> 16);
            if sample != target {
                rows[n] = sample;
                n += 1;
            }
        }
        for &row in &rows[..n] {
            w.prefetch(w.negative, row);
        }
        for (d, &row) in rows[..n].iter().enumerate() {
            let label = if d == 0 { 1.0 } else { 0.0 };
            // SAFETY: `row` is a vocabulary id, a row of the negative table.
            let out = unsafe { w.row(w.negative, row) };
            let Some(f) = s.sigmoid.get(dot(input, out)) else {
                continue;
            };
            let g = (label - f) * s.alpha;
            axpy(g, out, &mut worker.work);
            axpy(g, input, out);
        }
    }
    // Hierarchical softmax.
    if let Some(codes) = &s.vocab.huffman {
        let (code, path) = &codes[target as usize];
        for (&bit, &node) in code.iter().zip(path) {
            // SAFETY: inner nodes number fewer than the words, rows of the tree table.
            let out = unsafe { w.row(w.tree, node) };
            let Some(f) = s.sigmoid.get(dot(input, out)) else {
                continue;
            };
            let g = (1.0 - bit as f32 - f) * s.alpha;
            axpy(g, out, &mut worker.work);
            axpy(g, input, out);
        }
    }
}

/// Skip-gram: the vector of `context` learns to predict `center`.
pub fn skip_gram(s: &Step, w: &Weights, worker: &mut Worker, center: u32, context: u32) {
    #[cfg(target_arch = "x86_64")]
    if wide_vectors() {
        // SAFETY: the CPU has the features `wide` is compiled for (checked above).
        return unsafe { wide::skip_gram(s, w, worker, center, context) };
    }
    skip_gram_body(s, w, worker, center, context)
}

/// CBOW: the mean (or sum) of the `context` vectors learns to predict `center`; every context
/// vector takes the error.
pub fn cbow(s: &Step, w: &Weights, worker: &mut Worker, center: u32, context: &[u32], mean: bool) {
    #[cfg(target_arch = "x86_64")]
    if wide_vectors() {
        // SAFETY: as in `skip_gram`.
        return unsafe { wide::cbow(s, w, worker, center, context, mean) };
    }
    cbow_body(s, w, worker, center, context, mean)
}

/// Whether this x86-64 CPU has AVX2 and FMA (checked once, then cached by the standard library).
#[cfg(target_arch = "x86_64")]
fn wide_vectors() -> bool {
    is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")
}

/// The kernels compiled for AVX2 + FMA (the portable build targets SSE2 only).
#[cfg(target_arch = "x86_64")]
mod wide {
    use super::*;

    /// [`skip_gram_body`] with AVX2 and FMA.
    ///
    /// # Safety
    /// The CPU supports AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn skip_gram(s: &Step, w: &Weights, worker: &mut Worker, center: u32, context: u32) {
        skip_gram_body(s, w, worker, center, context)
    }

    /// [`cbow_body`] with AVX2 and FMA.
    ///
    /// # Safety
    /// The CPU supports AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn cbow(
        s: &Step,
        w: &Weights,
        worker: &mut Worker,
        center: u32,
        context: &[u32],
        mean: bool,
    ) {
        cbow_body(s, w, worker, center, context, mean)
    }
}

#[inline(always)]
fn skip_gram_body(s: &Step, w: &Weights, worker: &mut Worker, center: u32, context: u32) {
    worker.work.fill(0.0);
    // SAFETY: `context` is a vocabulary id, a row of the input table.
    let input = unsafe { w.row(w.input, context) };
    output_layer(s, w, worker, center, input);
    axpy(1.0, &worker.work, input);
}

#[inline(always)]
fn cbow_body(s: &Step, w: &Weights, worker: &mut Worker, center: u32, context: &[u32], mean: bool) {
    if context.is_empty() {
        return;
    }
    worker.work.fill(0.0);
    worker.hidden.fill(0.0);
    let mut hidden = std::mem::take(&mut worker.hidden);
    for &c in context {
        // SAFETY: context ids are vocabulary ids, rows of the input table.
        axpy(1.0, unsafe { w.row(w.input, c) }, &mut hidden);
    }
    let scale = 1.0 / context.len() as f32;
    if mean {
        hidden.iter_mut().for_each(|h| *h *= scale);
    }
    output_layer(s, w, worker, center, &hidden);
    worker.hidden = hidden;
    if !mean {
        worker.work.iter_mut().for_each(|v| *v *= scale);
    }
    for &c in context {
        // SAFETY: as above.
        axpy(1.0, &worker.work, unsafe { w.row(w.input, c) });
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    /// σ as word2vec.c's table gives it: the value at the start of x's table cell.
    fn table_sigmoid(x: f64) -> Option<f64> {
        if x <= -6.0 || x >= 6.0 {
            return None;
        }
        let cell = ((x + 6.0) * (1000.0 / 12.0)).floor();
        let at = (cell / 1000.0 * 2.0 - 1.0) * 6.0;
        Some(1.0 / (1.0 + (-at).exp()))
    }

    #[test]
    fn one_skip_gram_pair_updates_as_the_reference_formula() {
        let counts: HashMap<String, u64> = [("a", 40u64), ("b", 30), ("c", 20), ("d", 10)]
            .iter()
            .map(|(w, c)| (w.to_string(), *c))
            .collect();
        let vocab = Vocab::new(counts, 1, 0.0, 0.75, false);
        let dim = 4;
        let mut input: Vec<f32> = (0..4 * dim)
            .map(|i| ((i * 7) % 11) as f32 / 10.0 - 0.5)
            .collect();
        let mut negative: Vec<f32> = (0..4 * dim)
            .map(|i| ((i * 5) % 13) as f32 / 10.0 - 0.6)
            .collect();
        let (input0, negative0) = (input.clone(), negative.clone());
        let weights = Weights {
            input: input.as_mut_ptr(),
            negative: negative.as_mut_ptr(),
            tree: std::ptr::null_mut(),
            dim,
        };
        let sigmoid = SigmoidTable::new();
        let step = Step {
            vocab: &vocab,
            sigmoid: &sigmoid,
            negative: 3,
            alpha: 0.025,
        };
        let (center, context) = (1u32, 2u32);
        let mut worker = Worker::new(7, dim);
        // The samples the kernel will draw, from a copy of the worker's generator.
        let mut twin = Worker::new(7, dim);
        let samples: Vec<u32> = (0..3)
            .map(|_| vocab.draw(twin.next_random() >> 16))
            .collect();
        skip_gram(&step, &weights, &mut worker, center, context);

        // Reference, in f64: for the target (label 1) then each sample ≠ target (label 0),
        // g = (label − σ(in·out))·α; work += g·out; out += g·in; finally in += work.
        let row = |t: &[f32], r: u32| -> Vec<f64> {
            t[r as usize * dim..(r as usize + 1) * dim]
                .iter()
                .map(|&v| v as f64)
                .collect()
        };
        let inp = row(&input0, context);
        let mut outs: HashMap<u32, Vec<f64>> = HashMap::new();
        let mut work = vec![0f64; dim];
        let pairs = std::iter::once((center, 1.0))
            .chain(samples.iter().filter(|&&s| s != center).map(|&s| (s, 0.0)));
        for (r, label) in pairs {
            let out = outs.entry(r).or_insert_with(|| row(&negative0, r));
            let x: f64 = inp.iter().zip(out.iter()).map(|(a, b)| a * b).sum();
            let Some(f) = table_sigmoid(x) else { continue };
            let g = (label - f) * 0.025;
            for k in 0..dim {
                work[k] += g * out[k];
                out[k] += g * inp[k];
            }
        }
        for k in 0..dim {
            let got = input[context as usize * dim + k] as f64;
            assert!((got - (inp[k] + work[k])).abs() < 1e-6, "input[{k}]");
        }
        for (r, out) in &outs {
            for k in 0..dim {
                let got = negative[*r as usize * dim + k] as f64;
                assert!((got - out[k]).abs() < 1e-6, "output row {r}[{k}]");
            }
        }
        assert!(
            outs.len() >= 2,
            "at least one negative sample was drawn: {samples:?}"
        );
        // Rows nobody touched keep their values.
        for r in 0..4u32 {
            if !outs.contains_key(&r) {
                assert_eq!(row(&negative, r), row(&negative0, r));
            }
        }
    }
}
