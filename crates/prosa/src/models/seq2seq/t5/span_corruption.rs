//! T5's pretraining objective, span corruption (Raffel et al. 2020, §3.1.4): about 15% of a
//! segment's tokens, in spans of mean length 3, are dropped from the input — each span replaced
//! by one sentinel (`<extra_id_0>`, `<extra_id_1>`, …) — and the target lists the sentinels
//! each followed by the tokens it hides, closed by the next sentinel. The span lengths are drawn
//! as in the original `random_spans_noise_mask`: the noise and non-noise token counts are each
//! split into the same number of random non-empty parts, interleaved starting with non-noise.

use rand::seq::SliceRandom;
use rand::Rng;

use crate::models::seq2seq::TranslationExample;

/// How much to corrupt.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SpanCorruption {
    /// Fraction of tokens dropped (T5: 0.15).
    pub noise_density: f64,
    /// Mean length of a dropped span (T5: 3).
    pub mean_span_length: f64,
}

impl Default for SpanCorruption {
    fn default() -> Self {
        Self {
            noise_density: 0.15,
            mean_span_length: 3.0,
        }
    }
}

impl SpanCorruption {
    /// Which of `length` tokens are noise: `round(length × density)` tokens (at least 1, at most
    /// `length − 1`) in `round(noise / mean span)` spans (at least 1).
    pub fn noise_mask(&self, length: usize, rng: &mut impl Rng) -> Vec<bool> {
        if length < 2 {
            return vec![false; length];
        }
        let noise = ((length as f64 * self.noise_density).round() as usize).clamp(1, length - 1);
        let spans = ((noise as f64 / self.mean_span_length).round() as usize)
            .max(1)
            .min(noise)
            .min(length - noise);
        let noise_lengths = random_partition(noise, spans, rng);
        let kept_lengths = random_partition(length - noise, spans, rng);
        let mut mask = Vec::with_capacity(length);
        for (kept, dropped) in kept_lengths.into_iter().zip(noise_lengths) {
            mask.extend(std::iter::repeat_n(false, kept));
            mask.extend(std::iter::repeat_n(true, dropped));
        }
        mask
    }

    /// One pretraining example of `tokens` (without `</s>`): the source keeps the non-noise
    /// tokens with a sentinel per span and ends with `eos`; the target is each sentinel and its
    /// span, closed by the next sentinel (`</s>` is added by the training labels).
    /// `sentinel(i)` is the id of `<extra_id_i>`; spans past the last sentinel stay in the input.
    pub fn example(
        &self,
        tokens: &[u32],
        sentinels: &[u32],
        eos: u32,
        rng: &mut impl Rng,
    ) -> TranslationExample {
        let mask = self.noise_mask(tokens.len(), rng);
        let (mut source, mut target) = (Vec::new(), Vec::new());
        let mut span = 0;
        for (i, (&token, &noise)) in tokens.iter().zip(&mask).enumerate() {
            let starts_span = noise && (i == 0 || !mask[i - 1]);
            if noise && span < sentinels.len() {
                if starts_span {
                    source.push(sentinels[span]);
                    target.push(sentinels[span]);
                }
                target.push(token);
                let ends_span = i + 1 == tokens.len() || !mask[i + 1];
                if ends_span {
                    span += 1;
                }
            } else {
                source.push(token);
            }
        }
        if let Some(&closing) = sentinels.get(span) {
            target.push(closing);
        }
        source.push(eos);
        TranslationExample { source, target }
    }
}

/// `total` split into `parts` random positive lengths (summing to `total`), as a random
/// choice of `parts − 1` cut points among the `total − 1` gaps.
fn random_partition(total: usize, parts: usize, rng: &mut impl Rng) -> Vec<usize> {
    let mut gaps: Vec<usize> = (1..total).collect();
    gaps.shuffle(rng);
    let mut cuts: Vec<usize> = gaps.into_iter().take(parts - 1).collect();
    cuts.sort_unstable();
    let mut lengths = Vec::with_capacity(parts);
    let mut previous = 0;
    for cut in cuts.into_iter().chain(std::iter::once(total)) {
        lengths.push(cut - previous);
        previous = cut;
    }
    lengths
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn drops_fifteen_percent_in_spans_of_about_three() {
        let c = SpanCorruption::default();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let (mut noise, mut spans, mut tokens) = (0, 0, 0);
        for _ in 0..200 {
            let mask = c.noise_mask(100, &mut rng);
            assert_eq!(mask.len(), 100);
            noise += mask.iter().filter(|&&m| m).count();
            spans += mask.windows(2).filter(|w| !w[0] && w[1]).count();
            assert!(!mask[0], "T5's masks start with kept tokens");
            tokens += 100;
        }
        assert_eq!(noise, 200 * 15);
        assert_eq!(spans, 200 * 5, "15 noise tokens / mean 3 = 5 spans each");
        assert_eq!(tokens, 20_000);
    }

    #[test]
    fn source_and_target_interleave_sentinels_and_spans() {
        let c = SpanCorruption::default();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let tokens: Vec<u32> = (10..50).collect();
        let sentinels: Vec<u32> = (1000..1100).rev().collect();
        let e = c.example(&tokens, &sentinels, 1, &mut rng);
        assert_eq!(*e.source.last().unwrap(), 1);
        // Every original token appears exactly once: kept in the source or hidden in the target.
        let mut seen: Vec<u32> = e
            .source
            .iter()
            .chain(&e.target)
            .copied()
            .filter(|&t| (10..50).contains(&t))
            .collect();
        seen.sort_unstable();
        assert_eq!(seen, tokens);
        // Sentinels in order: source uses 0..n, target 0..=n (the closing one).
        let used =
            |row: &[u32]| -> Vec<u32> { row.iter().copied().filter(|&t| t >= 1000).collect() };
        let n = used(&e.source).len();
        assert_eq!(used(&e.source), sentinels[..n].to_vec());
        assert_eq!(used(&e.target), sentinels[..=n].to_vec());
        // Rebuild the segment from the two halves.
        let mut rebuilt = Vec::new();
        let mut spans = e.target.split(|&t| t >= 1000).skip(1);
        for &t in &e.source[..e.source.len() - 1] {
            if t >= 1000 {
                rebuilt.extend(spans.next().unwrap());
            } else {
                rebuilt.push(t);
            }
        }
        assert_eq!(rebuilt, tokens);
    }
}
