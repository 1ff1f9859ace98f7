//! Logits processors and sampling warpers, one function each, applied in transformers' order:
//! repetition penalty, no-repeat n-grams, minimum new tokens; then (sampling only) temperature,
//! top-k and top-p. Each works on one row of scores in place; removed tokens get −∞.

use std::collections::HashSet;

use rand::Rng;

use super::config::GenerationConfig;
pub use crate::nn::activation::exp_fast;
use crate::nn::lanes::{fold, vectorized};

/// Divides scores of tokens already in `sequence` by `penalty` when positive, multiplies them
/// when negative (transformers' `RepetitionPenaltyLogitsProcessor`; every token of the row
/// counts, padding included).
pub fn repetition_penalty(scores: &mut [f32], sequence: &[u32], penalty: f32) {
    let seen: HashSet<u32> = sequence.iter().copied().collect();
    for t in seen {
        if let Some(s) = scores.get_mut(t as usize) {
            *s = if *s < 0.0 { *s * penalty } else { *s / penalty };
        }
    }
}

/// Bans every token that would complete an n-gram of size `n` already present in `sequence`.
pub fn no_repeat_ngram(scores: &mut [f32], sequence: &[u32], n: usize) {
    ban_tokens(scores, &no_repeat_bans(sequence, n));
}

/// The tokens [`no_repeat_ngram`] bans: the last of every n-gram of `sequence` whose first
/// `n − 1` tokens are the sequence's last `n − 1` (repeats possible, in order of appearance).
fn no_repeat_bans(sequence: &[u32], n: usize) -> Vec<u32> {
    let len = sequence.len();
    // No complete n-gram yet (an encoder–decoder's first step has only its start token).
    if n == 0 || len < n {
        return Vec::new();
    }
    let prefix = &sequence[len + 1 - n..];
    sequence
        .windows(n)
        .filter(|gram| gram[..n - 1] == *prefix)
        .map(|gram| gram[n - 1])
        .collect()
}

/// Bans the end-of-sequence tokens.
pub fn ban_tokens(scores: &mut [f32], tokens: &[u32]) {
    for &t in tokens {
        if let Some(s) = scores.get_mut(t as usize) {
            *s = f32::NEG_INFINITY;
        }
    }
}

/// Divides the scores by the temperature.
pub fn temperature(scores: &mut [f32], t: f32) {
    scores.iter_mut().for_each(|s| *s /= t);
}

/// Keeps the tokens scoring at least the `k`-th highest score (ties kept).
pub fn top_k(scores: &mut [f32], k: usize, min_keep: usize) {
    let k = k.max(min_keep).min(scores.len());
    if k == 0 || k == scores.len() {
        return;
    }
    let mut sorted = scores.to_vec();
    sorted.select_nth_unstable_by(k - 1, |a, b| b.total_cmp(a));
    let threshold = sorted[k - 1];
    scores
        .iter_mut()
        .filter(|s| **s < threshold)
        .for_each(|s| *s = f32::NEG_INFINITY);
}

/// Nucleus filtering: sorting ascending, removes the tokens whose cumulative probability is at
/// most `1 − p` (so the kept set is the smallest whose probability reaches `p`), keeping at least
/// `min_keep`.
pub fn top_p(scores: &mut [f32], p: f32, min_keep: usize) {
    if p >= 1.0 {
        return;
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    // Stable ascending sort, as torch.sort on CPU.
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let probs = softmax(&order.iter().map(|&i| scores[i]).collect::<Vec<_>>());
    let mut cumulative = 0f32;
    let keep_from = scores.len().saturating_sub(min_keep);
    let mut remove = Vec::new();
    for (rank, (&i, q)) in order.iter().zip(&probs).enumerate() {
        cumulative += q;
        if cumulative <= 1.0 - p && rank < keep_from {
            remove.push(i);
        }
    }
    for i in remove {
        scores[i] = f32::NEG_INFINITY;
    }
}

/// Softmax of a row (−∞ gives 0).
pub fn softmax(scores: &[f32]) -> Vec<f32> {
    let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut out: Vec<f32> = scores.iter().map(|s| (s - max).exp()).collect();
    let sum: f32 = out.iter().sum();
    out.iter_mut().for_each(|v| *v /= sum);
    out
}

/// Log-softmax of a row. Beam search takes it over every beam's vocabulary at every step, so
/// the maximum and the sum of exponentials ([`exp_fast`]) run in sixteen independent lanes the
/// compiler keeps in vector registers — with AVX-512 where the CPU has it.
pub fn log_softmax(scores: &[f32]) -> Vec<f32> {
    vectorized(
        #[inline(always)]
        || log_softmax_body(scores),
    )
}

#[inline(always)]
fn log_softmax_body(scores: &[f32]) -> Vec<f32> {
    let log_sum = log_sum_exp_body(scores);
    scores.iter().map(|s| s - log_sum).collect()
}

/// `ln Σ exp(s)` of a row, the part [`log_softmax`] subtracts from every score (`s − it` is
/// the log-probability, to the bit).
pub fn log_sum_exp(scores: &[f32]) -> f32 {
    vectorized(
        #[inline(always)]
        || log_sum_exp_body(scores),
    )
}

#[inline(always)]
fn log_sum_exp_body(scores: &[f32]) -> f32 {
    let max = fold(scores, f32::NEG_INFINITY, f32::max, f32::max);
    let sum = fold(scores, 0.0, |a, s| a + exp_fast(s - max), |a, b| a + b);
    sum.ln() + max
}

/// Index of the highest score (the first on ties, as torch.argmax).
pub fn argmax(scores: &[f32]) -> u32 {
    vectorized(
        #[inline(always)]
        || argmax_body(scores),
    )
}

/// The maximum in vector lanes, then the first position holding it. A NaN is never the
/// highest score (as `>` comparisons see it), unless it comes first.
#[inline(always)]
fn argmax_body(scores: &[f32]) -> u32 {
    if scores.first().is_none_or(|s| s.is_nan()) {
        return 0;
    }
    let max = fold(scores, f32::NEG_INFINITY, f32::max, f32::max);
    scores.iter().position(|&s| s == max).unwrap_or(0) as u32
}

/// Draws a token from the softmax of `scores`.
pub fn sample(scores: &[f32], rng: &mut impl Rng) -> u32 {
    let probs = softmax(scores);
    let mut u: f32 = rng.random();
    for (i, p) in probs.iter().enumerate() {
        if u < *p {
            return i as u32;
        }
        u -= p;
    }
    // Rounding left a sliver: the last token that has any probability.
    probs.iter().rposition(|p| *p > 0.0).unwrap_or(0) as u32
}

/// The processors that do not depend on sampling, in transformers' order; `new_tokens` is how
/// many tokens have been generated so far.
pub fn process(scores: &mut [f32], sequence: &[u32], new_tokens: usize, g: &GenerationConfig) {
    Processors::plan(sequence.len(), new_tokens, g).apply(scores, sequence, g);
}

/// Which of [`process`]'s processors act on a row at one step — known before the row's scores
/// are: beam search asks for their [`effect`](Self::effect) and writes out a row's
/// log-probabilities only when they rescore it.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Processors {
    repetition_penalty: Option<f32>,
    no_repeat_ngram: Option<usize>,
    ban_end_tokens: bool,
    force_bos: Option<u32>,
    force_eos: Option<u32>,
}

impl Processors {
    /// The processors that act on a row of `sequence_len` tokens after `new_tokens` new ones.
    pub fn plan(sequence_len: usize, new_tokens: usize, g: &GenerationConfig) -> Self {
        let n = g.no_repeat_ngram_size;
        // transformers' ForcedBOS / ForcedEOS processors: the first token of a one-token start,
        // and the end token at the last position the maximum length leaves.
        let last_position = g.forced_eos_token_id.is_some_and(|_| {
            sequence_len + 1 == g.max_total_length(sequence_len - new_tokens.min(sequence_len))
        });
        Self {
            repetition_penalty: (g.repetition_penalty != 1.0).then_some(g.repetition_penalty),
            // No complete n-gram yet: nothing to ban (an encoder–decoder's first step).
            no_repeat_ngram: (n > 0 && sequence_len >= n).then_some(n),
            ban_end_tokens: sequence_len < g.min_length || new_tokens < g.min_new_tokens,
            force_bos: g.forced_bos_token_id.filter(|_| sequence_len == 1),
            force_eos: g.forced_eos_token_id.filter(|_| last_position),
        }
    }

    /// True when no processor acts: the row's scores stay as they are.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// What the processors do to the row that continues `sequence`, in a row of `vocab`
    /// scores, where that is known without the scores: remove tokens, force one, or neither.
    pub fn effect(&self, sequence: &[u32], vocab: usize, g: &GenerationConfig) -> Effect {
        // A forced token overwrites the whole row, whatever came before it (EOS after BOS).
        if let Some(token) = self.force_eos.or(self.force_bos) {
            return Effect::Forces(token);
        }
        if self.repetition_penalty.is_some() {
            return Effect::Rescores;
        }
        let mut bans = self
            .no_repeat_ngram
            .map_or_else(Vec::new, |n| no_repeat_bans(sequence, n));
        if self.ban_end_tokens {
            bans.extend_from_slice(&g.eos_token_ids);
        }
        bans.retain(|&t| (t as usize) < vocab);
        bans.sort_unstable();
        bans.dedup();
        Effect::Bans(bans)
    }

    /// Applies the processors to `scores`, the row that continues `sequence`.
    pub fn apply(&self, scores: &mut [f32], sequence: &[u32], g: &GenerationConfig) {
        if let Some(penalty) = self.repetition_penalty {
            repetition_penalty(scores, sequence, penalty);
        }
        if let Some(n) = self.no_repeat_ngram {
            no_repeat_ngram(scores, sequence, n);
        }
        if self.ban_end_tokens {
            ban_tokens(scores, &g.eos_token_ids);
        }
        if let Some(bos) = self.force_bos {
            force_token(scores, bos);
        }
        if let Some(eos) = self.force_eos {
            force_token(scores, eos);
        }
    }
}

/// What [`Processors::apply`] does to a row, as [`Processors::effect`] tells it.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// These tokens (ascending, each once, all inside the row) get −∞; the rest stay as they
    /// are (none listed: the row is left as it is).
    Bans(Vec<u32>),
    /// Every score becomes −∞ but this token's, which becomes 0 ([`force_token`]).
    Forces(u32),
    /// Scores change otherwise (the repetition penalty).
    Rescores,
}

/// Leaves `token` the only possible choice (score 0, every other −∞).
pub fn force_token(scores: &mut [f32], token: u32) {
    scores.fill(f32::NEG_INFINITY);
    if let Some(s) = scores.get_mut(token as usize) {
        *s = 0.0;
    }
}

/// The sampling warpers: temperature, top-k, top-p.
pub fn warp(scores: &mut [f32], g: &GenerationConfig) {
    if g.temperature != 1.0 {
        temperature(scores, g.temperature);
    }
    if g.top_k > 0 {
        top_k(scores, g.top_k, 1);
    }
    if g.top_p < 1.0 {
        top_p(scores, g.top_p, 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_exp_is_within_two_ulp_of_exp() {
        let mut worst = 0f32;
        for i in 0..=200_000 {
            let x = -87.0 + 175.0 * i as f32 / 200_000.0;
            let (fast, exact) = (exp_fast(x), (x as f64).exp() as f32);
            worst = worst.max((fast - exact).abs() / exact);
        }
        assert!(worst < 2.0 * f32::EPSILON, "relative error {worst}");
        assert!(exp_fast(f32::NEG_INFINITY) < 1e-37);
        assert_eq!(exp_fast(0.0), 1.0);
    }

    #[test]
    fn log_softmax_equals_the_f64_reference_and_the_portable_body() {
        // A vocabulary that is not a multiple of the lanes, a banned token and a wide range.
        let mut scores: Vec<f32> = (0..32_003)
            .map(|i| (i as f32 * 0.37).sin() * 12.0)
            .collect();
        scores[5] = f32::NEG_INFINITY;
        scores[32_001] = 30.0;
        let max = scores
            .iter()
            .fold(f64::NEG_INFINITY, |m, &s| m.max(s as f64));
        let sum: f64 = scores.iter().map(|&s| (s as f64 - max).exp()).sum();
        let reference: Vec<f64> = scores.iter().map(|&s| s as f64 - max - sum.ln()).collect();
        let (ours, body) = (log_softmax(&scores), log_softmax_body(&scores));
        for (i, ((&o, &b), &r)) in ours.iter().zip(&body).zip(&reference).enumerate() {
            if r.is_infinite() {
                assert!(o.is_infinite() && b.is_infinite(), "token {i}");
            } else {
                assert!(
                    (o as f64 - r).abs() < 1e-5 * r.abs().max(1.0),
                    "token {i}: {o} vs {r}"
                );
                assert!(
                    (o - b).abs() <= 1e-6 * o.abs().max(1.0),
                    "token {i}: {o} vs {b}"
                );
            }
        }
        assert_eq!(log_softmax(&[1.0]), vec![0.0]);
    }

    #[test]
    fn argmax_is_the_first_highest_score() {
        let mut scores: Vec<f32> = (0..1_003).map(|i| (i as f32 * 0.61).sin()).collect();
        let expected = (0..scores.len()).fold(0, |b, i| if scores[i] > scores[b] { i } else { b });
        assert_eq!(argmax(&scores), expected as u32);
        scores[1_001] = 2.0;
        scores[40] = 2.0;
        assert_eq!(argmax(&scores), 40);
        scores[7] = f32::NAN;
        assert_eq!(argmax(&scores), 40);
        assert_eq!(argmax(&[f32::NEG_INFINITY; 3]), 0);
        assert_eq!(argmax(&[]), 0);
    }

    #[test]
    fn a_row_is_left_as_it_is_exactly_when_no_processor_is_planned() {
        let row: Vec<f32> = (0..40).map(|i| (i as f32 * 0.37).sin()).collect();
        let sequence = [3u32, 7, 3];
        let base = GenerationConfig {
            eos_token_ids: vec![2],
            max_new_tokens: Some(4),
            ..GenerationConfig::default()
        };
        let configs = [
            base.clone(),
            GenerationConfig {
                repetition_penalty: 1.3,
                ..base.clone()
            },
            GenerationConfig {
                no_repeat_ngram_size: 2,
                ..base.clone()
            },
            GenerationConfig {
                min_new_tokens: 3,
                ..base.clone()
            },
            GenerationConfig {
                min_length: 4,
                ..base.clone()
            },
            GenerationConfig {
                forced_bos_token_id: Some(5),
                ..base.clone()
            },
            GenerationConfig {
                forced_eos_token_id: Some(2),
                ..base.clone()
            },
        ];
        let mut acting = 0;
        for (c, g) in configs.iter().enumerate() {
            for (len, new_tokens) in [(1, 0), (3, 1), (3, 3), (5, 3)] {
                let mut scores = row.clone();
                process(&mut scores, &sequence[..len.min(3)], new_tokens, g);
                let planned = !Processors::plan(len.min(3), new_tokens, g).is_empty();
                assert_eq!(
                    scores != row,
                    planned,
                    "config {c}, length {len}, new {new_tokens}"
                );
                acting += planned as usize;
            }
        }
        assert!(acting >= 6, "every processor acts somewhere: {acting}");
    }

    #[test]
    fn no_repeat_bans_the_completion_of_a_seen_bigram() {
        let mut s = vec![0.0; 6];
        no_repeat_ngram(&mut s, &[1, 2, 3, 1], 2);
        assert_eq!(s[2], f32::NEG_INFINITY);
        assert_eq!(s.iter().filter(|v| v.is_infinite()).count(), 1);
    }

    #[test]
    fn repetition_penalty_pushes_seen_tokens_down() {
        let mut s = vec![2.0, -2.0, 1.0];
        repetition_penalty(&mut s, &[0, 1], 2.0);
        assert_eq!(s, vec![1.0, -4.0, 1.0]);
    }

    #[test]
    fn top_p_keeps_the_smallest_set_reaching_p() {
        // Probabilities 0.5, 0.3, 0.2: p = 0.7 keeps the first two.
        let mut s: Vec<f32> = [0.5f32, 0.3, 0.2].iter().map(|p| p.ln()).collect();
        top_p(&mut s, 0.7, 1);
        assert!(s[0].is_finite() && s[1].is_finite() && s[2].is_infinite());
    }
}
