//! Beam search as transformers ≥ 4.50 runs it: per prompt, the `2·num_beams` best continuations
//! of all beams (by summed log-probability) are taken; those that end (an end token, or the
//! length limit) and rank among the first `num_beams` join the finished list with their score
//! divided by `generated_length ^ length_penalty`; the best unfinished ones continue. Stopping
//! follows `early_stopping` (true, false = a heuristic, or "never"). A candidate whose new text
//! contains a stop string ends like one that made an end token.

use super::config::{EarlyStopping, GenerationConfig};
use super::logits::{self, Effect};
use super::{hits_stop_string, GenerationCache, GenerationOutput, Generator, Start};
use crate::error::Result;
use crate::nn::attention::position_ids;
use crate::nn::gemm::with_f32;
use crate::nn::lanes::vectorized;
use candle_core::Tensor;

/// A score that marks "not a candidate".
const EXCLUDED: f32 = -1.0e9;

#[derive(Clone)]
struct Hypothesis {
    tokens: Vec<u32>,
    score: f32,
    finished: bool,
}

/// Indices of the `k` highest values, highest first (stable: earlier index first on ties).
/// The `k` are selected first, then only they are sorted.
fn top_k_indices(values: &[f32], k: usize) -> Vec<usize> {
    let before = |a: &usize, b: &usize| values[*b].total_cmp(&values[*a]).then(a.cmp(b));
    let mut order: Vec<usize> = (0..values.len()).collect();
    if k < order.len() {
        order.select_nth_unstable_by(k, before);
        order.truncate(k);
    }
    order.sort_by(before);
    order
}

/// The `k` best `(score, index)` pairs of a row's scores `(value − minus) + plus` (index offset
/// by `first`), best first, earlier index first on ties, the values at indices `bans`
/// (ascending) taken as −∞: one pass with a comparison against the worst kept, for a
/// vocabulary-sized row where `k` is a handful. The scores rise with the values, so a block of
/// sixteen values none above the worst kept one's value is passed over with one vector
/// comparison (a banned value only lowers its score: still passed over).
fn top_k_scored(
    values: &[f32],
    bans: &[u32],
    minus: f32,
    plus: f32,
    first: usize,
    k: usize,
) -> Vec<(f32, usize)> {
    vectorized(
        #[inline(always)]
        || {
            const BLOCK: usize = 16;
            // (score, index, value), best first.
            let mut best: Vec<(f32, usize, f32)> = Vec::with_capacity(k + 1);
            if k == 0 {
                return Vec::new();
            }
            let mut bans = bans.iter().map(|&t| t as usize).peekable();
            for (b, block) in values.chunks(BLOCK).enumerate() {
                // Bans in blocks passed over.
                while bans.next_if(|&t| t < b * BLOCK).is_some() {}
                if let Some(&(_, _, worst)) = best.get(k - 1) {
                    // `<=` is false for a NaN, which then takes the exact path.
                    if block.iter().fold(true, |all, &v| all & (v <= worst)) {
                        continue;
                    }
                }
                for (j, &v) in block.iter().enumerate() {
                    let banned = bans.next_if_eq(&(b * BLOCK + j)).is_some();
                    // A banned log-probability is −∞ before the beam's score is added.
                    let (v, s) = if banned {
                        (f32::NEG_INFINITY, (f32::NEG_INFINITY - 0.0) + plus)
                    } else {
                        (v, (v - minus) + plus)
                    };
                    if best.len() == k && s.total_cmp(&best[k - 1].0).is_le() {
                        continue;
                    }
                    // After every kept score at least as high (earlier indices win ties).
                    let at = best.partition_point(|(b, _, _)| b.total_cmp(&s).is_ge());
                    best.insert(at, (s, first + b * BLOCK + j, v));
                    best.truncate(k);
                }
            }
            best.into_iter().map(|(s, i, _)| (s, i)).collect()
        },
    )
}

/// The `keep` best continuations of every prompt's beams, `(beam · vocab + token, score)`,
/// best first. Every beam's row of `logits` (all prompts' beams, one after another) is
/// processed and ranked in one parallel sweep (on the spinning helpers of `nn::spin_pool`),
/// then each prompt's short lists are merged.
fn best_continuations(
    running: &[Vec<Hypothesis>],
    logits: &[f32],
    vocab: usize,
    keep: usize,
    new_tokens: usize,
    g: &GenerationConfig,
) -> Vec<Vec<(usize, f32)>> {
    let beams = running.first().map_or(1, Vec::len);
    let mut per_row: Vec<Vec<(f32, usize)>> = vec![Vec::new(); running.len() * beams];
    crate::nn::spin_pool::for_each_chunk_mut(&mut per_row, 1, |r, best| {
        let hyp = &running[r / beams][r % beams];
        let row = &logits[r * vocab..(r + 1) * vocab];
        best[0] = row_continuations(row, hyp, (r % beams) * vocab, keep, new_tokens, g);
    });
    per_row
        .chunks(beams)
        .map(|rows| {
            let mut merged: Vec<(f32, usize)> = rows.iter().flatten().copied().collect();
            merged.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            merged.truncate(keep);
            merged.into_iter().map(|(s, i)| (i, s)).collect()
        })
        .collect()
}

/// The `keep` best `(score, first + token)` continuations of one beam: its log-probabilities
/// after the logits processors, plus its score. Where the processors only remove tokens (or
/// none acts), the log-probabilities are ranked as they are computed, without writing them out;
/// where they force a token, the row is not read. The same bits either way.
fn row_continuations(
    row: &[f32],
    hyp: &Hypothesis,
    first: usize,
    keep: usize,
    new_tokens: usize,
    g: &GenerationConfig,
) -> Vec<(f32, usize)> {
    let processors = logits::Processors::plan(hyp.tokens.len(), new_tokens, g);
    match processors.effect(&hyp.tokens, row.len(), g) {
        Effect::Bans(bans) => {
            let log_sum = logits::log_sum_exp(row);
            top_k_scored(row, &bans, log_sum, hyp.score, first, keep)
        }
        Effect::Forces(token) => forced_continuations(row.len(), token, hyp.score, first, keep),
        Effect::Rescores => {
            let mut lp = logits::log_softmax(row);
            processors.apply(&mut lp, &hyp.tokens, g);
            // `v − 0` is `v`, to the bit.
            top_k_scored(&lp, &[], 0.0, hyp.score, first, keep)
        }
    }
}

/// The `keep` best continuations of a row of `vocab` log-probabilities all −∞ but `token`'s, 0
/// (a token out of the row: all −∞), plus `plus`: ranked as [`top_k_scored`] ranks them.
fn forced_continuations(
    vocab: usize,
    token: u32,
    plus: f32,
    first: usize,
    keep: usize,
) -> Vec<(f32, usize)> {
    let token = token as usize;
    let removed = (f32::NEG_INFINITY - 0.0) + plus;
    // Every −∞ scores the same: only the first `keep` indices besides the token can rank.
    let mut ranked: Vec<(f32, usize)> = (0..vocab)
        .filter(|&i| i != token)
        .take(keep)
        .map(|i| (removed, first + i))
        .collect();
    if token < vocab {
        // `(0 − 0) + plus`, as the written-out path computes it.
        ranked.push((0.0 + plus, first + token));
    }
    ranked.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    ranked.truncate(keep);
    ranked
}

/// Runs beam search from `start` (left-padded prompts, or decoder start tokens with an
/// encoder's output in the cache, whose rows are expanded to the beams and reordered with
/// them).
pub(super) fn beam_search<M: Generator>(
    model: &M,
    start: Start<M::Cache>,
    max_length: usize,
    g: &GenerationConfig,
) -> Result<GenerationOutput> {
    let Start {
        mut cache,
        ids,
        mask,
        pad,
    } = start;
    let batch = ids.len();
    let beams = g.num_beams;
    let prompt_length = ids[0].len();
    let keep = (2usize).max(1 + g.eos_token_ids.len()) * beams;
    // transformers fills ended sequences with pad_token_id, or the first end token when the pad
    // id is 0 or unset (`pad or eos` in Python).
    let fill = match (g.pad_token_id, g.eos_token_ids.first()) {
        (Some(p), _) if p != 0 => p,
        (_, Some(&e)) => e,
        (Some(p), None) => p,
        (None, None) => pad,
    };

    // One prefill per prompt, then every beam starts from a copy of it.
    let positions = position_ids(&mask);
    let prefill = model.next_token_logits(&ids, &positions, &mask, &mut cache)?;
    let expand: Vec<u32> = (0..batch * beams).map(|r| (r / beams) as u32).collect();
    cache.select_rows(&expand)?;
    let vocab = prefill.dim(2)?;
    let index = Tensor::new(expand.as_slice(), prefill.device())?;
    let mut step_logits = prefill.index_select(&index, 0)?;

    let mut running: Vec<Vec<Hypothesis>> = ids
        .iter()
        .map(|row| {
            (0..beams)
                .map(|b| Hypothesis {
                    tokens: row.clone(),
                    score: if b == 0 { 0.0 } else { EXCLUDED },
                    finished: false,
                })
                .collect()
        })
        .collect();
    let mut done: Vec<Vec<Hypothesis>> = ids
        .iter()
        .map(|row| {
            vec![
                Hypothesis {
                    tokens: row.clone(),
                    score: EXCLUDED,
                    finished: false,
                };
                beams
            ]
        })
        .collect();
    let mut improvable = vec![true; batch];
    let mut row_mask: Vec<Vec<u32>> = expand.iter().map(|&r| mask[r as usize].clone()).collect();
    let mut next_position: Vec<u32> = row_mask.iter().map(|m| m.iter().sum()).collect();
    let mut cur_len = prompt_length;

    loop {
        let mut all_hit = true;
        let mut parents: Vec<u32> = Vec::with_capacity(batch * beams);
        // The best of every (beam, token) continuation by accumulated log-probability.
        let new_tokens = cur_len - prompt_length;
        let tops = with_f32(&step_logits, |all| {
            best_continuations(&running, all, vocab, keep, new_tokens, g)
        })?;
        for (item, top) in tops.into_iter().enumerate() {
            let candidates: Vec<(usize, u32, f32, bool)> = top
                .iter()
                .map(|&(i, score)| {
                    let (beam, token) = (i / vocab, (i % vocab) as u32);
                    let ends = g.eos_token_ids.contains(&token) || cur_len + 1 >= max_length;
                    let stops = !ends && !g.stop_strings.is_empty() && {
                        let mut new = running[item][beam].tokens[prompt_length..].to_vec();
                        new.push(token);
                        hits_stop_string(model, &new, g)?
                    };
                    Ok((beam, token, score, ends || stops))
                })
                .collect::<Result<_>>()?;
            all_hit &= candidates.iter().all(|c| c.3);

            // The best unfinished continuations go on.
            let running_scores: Vec<f32> = candidates
                .iter()
                .map(|c| c.2 + if c.3 { EXCLUDED } else { 0.0 })
                .collect();
            let next = top_k_indices(&running_scores, beams);
            let old = std::mem::take(&mut running[item]);
            running[item] = next
                .iter()
                .map(|&k| {
                    let (beam, token, _, _) = candidates[k];
                    let mut tokens = old[beam].tokens.clone();
                    tokens.push(token);
                    parents.push((item * beams + beam) as u32);
                    Hypothesis {
                        tokens,
                        score: running_scores[k],
                        finished: false,
                    }
                })
                .collect();

            // Finished candidates among the first `beams` join the finished list.
            let all_finished = done[item].iter().all(|h| h.finished);
            let length = (cur_len + 1 - prompt_length) as f32;
            let mut merged = done[item].clone();
            for (rank, &(beam, token, score, hits)) in candidates.iter().enumerate() {
                let just_finished = hits && rank < beams;
                let mut s = score / length.powf(g.length_penalty);
                if all_finished && g.early_stopping == EarlyStopping::Immediately {
                    s += EXCLUDED;
                }
                if !improvable[item] {
                    s += EXCLUDED;
                }
                if !just_finished {
                    s += EXCLUDED;
                }
                let mut tokens = old[beam].tokens.clone();
                tokens.push(token);
                merged.push(Hypothesis {
                    tokens,
                    score: s,
                    finished: just_finished,
                });
            }
            let scores: Vec<f32> = merged.iter().map(|h| h.score).collect();
            done[item] = top_k_indices(&scores, beams)
                .into_iter()
                .map(|i| merged[i].clone())
                .collect();
        }
        cur_len += 1;

        // Can a running beam still beat the worst finished one?
        for item in 0..batch {
            let best_length = match g.early_stopping {
                EarlyStopping::Never if g.length_penalty > 0.0 => max_length - prompt_length,
                _ => cur_len - prompt_length,
            } as f32;
            let best_running = running[item][0].score / best_length.powf(g.length_penalty);
            let worst_done = done[item]
                .iter()
                .map(|h| h.score)
                .fold(f32::INFINITY, f32::min);
            let beatable = done[item]
                .iter()
                .any(|h| best_running > if h.finished { worst_done } else { EXCLUDED });
            improvable[item] &= beatable;
        }
        let open_beam = !(done.iter().flatten().all(|h| h.finished)
            && g.early_stopping == EarlyStopping::Immediately);
        if !(improvable.iter().any(|&u| u) && open_beam && !all_hit) {
            break;
        }

        // Next step: the chosen beams' caches, and their newest tokens.
        cache.reorder_beams(&parents)?;
        row_mask = parents
            .iter()
            .map(|&p| row_mask[p as usize].clone())
            .collect();
        next_position = parents.iter().map(|&p| next_position[p as usize]).collect();
        row_mask.iter_mut().for_each(|m| m.push(1));
        let step: Vec<Vec<u32>> = running
            .iter()
            .flatten()
            .map(|h| vec![*h.tokens.last().expect("a token")])
            .collect();
        let positions: Vec<Vec<u32>> = next_position.iter().map(|&p| vec![p]).collect();
        next_position.iter_mut().for_each(|p| *p += 1);
        step_logits = model.next_token_logits(&step, &positions, &row_mask, &mut cache)?;
    }

    let returned: Vec<&Hypothesis> = done
        .iter()
        .flat_map(|d| d.iter().take(g.num_return_sequences))
        .collect();
    let generated = returned
        .iter()
        .map(|h| h.tokens.len().saturating_sub(prompt_length))
        .max()
        .unwrap_or(0);
    let sequences = returned
        .iter()
        .map(|h| {
            let mut row = h.tokens.clone();
            row.resize(prompt_length + generated, fill);
            row
        })
        .collect();
    Ok(GenerationOutput {
        sequences,
        new_tokens: returned
            .iter()
            .map(|h| h.tokens.get(prompt_length..).unwrap_or(&[]).to_vec())
            .collect(),
        prompt_length,
        scores: Some(returned.iter().map(|h| h.score).collect()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_pass_selection_ranks_like_a_full_sort() {
        // Few distinct values, so ties are everywhere; −∞ as the processors leave it.
        let values: Vec<f32> = (0..500)
            .map(|i| match (i * 7919) % 13 {
                0 => f32::NEG_INFINITY,
                r => r as f32 / 4.0,
            })
            .collect();
        for k in [1, 3, 8, 499, 500, 600] {
            let full = top_k_indices(&values, k);
            let scored = top_k_scored(&values, &[], 0.0, 0.0, 1000, k);
            let indices: Vec<usize> = scored.iter().map(|&(_, i)| i - 1000).collect();
            assert_eq!(indices, full, "k = {k}");
            assert!(scored.iter().all(|&(s, i)| s == values[i - 1000]));
            // Shifted scores, where rounding makes ties of values that differ.
            let (minus, plus) = (3.0e7, 1.5);
            let shifted: Vec<f32> = values.iter().map(|&v| (v - minus) + plus).collect();
            let scored = top_k_scored(&values, &[], minus, plus, 0, k);
            let expected: Vec<(f32, usize)> = top_k_indices(&shifted, k)
                .into_iter()
                .map(|i| (shifted[i], i))
                .collect();
            assert_eq!(scored, expected, "shifted, k = {k}");
        }
    }

    #[test]
    fn every_processor_effect_ranks_the_bits_of_processed_written_out_log_probabilities() {
        // Ties and a −∞ logit, as rows come; tokens 5 → 9 make a bigram to ban.
        let mut row: Vec<f32> = (0..300)
            .map(|i| ((i * 7919) % 37) as f32 * 0.25 - 4.0)
            .collect();
        row[11] = f32::NEG_INFINITY;
        let base = GenerationConfig {
            eos_token_ids: vec![2, 7],
            max_new_tokens: Some(3),
            ..GenerationConfig::default()
        };
        let configs = [
            base.clone(),
            GenerationConfig {
                min_new_tokens: 3,
                ..base.clone()
            },
            GenerationConfig {
                no_repeat_ngram_size: 2,
                ..base.clone()
            },
            GenerationConfig {
                no_repeat_ngram_size: 1,
                min_new_tokens: 3,
                ..base.clone()
            },
            GenerationConfig {
                repetition_penalty: 1.7,
                no_repeat_ngram_size: 2,
                ..base.clone()
            },
            GenerationConfig {
                forced_eos_token_id: Some(7),
                min_new_tokens: 3,
                ..base.clone()
            },
            GenerationConfig {
                forced_bos_token_id: Some(13),
                ..base.clone()
            },
            GenerationConfig {
                forced_eos_token_id: Some(900),
                ..base.clone()
            },
        ];
        let mut effects = Vec::new();
        for (c, g) in configs.iter().enumerate() {
            for (tokens, new_tokens) in [
                (vec![0], 0),
                (vec![0, 5, 9, 5], 1),
                (vec![0, 5, 9, 5, 4], 2),
            ] {
                for (score, keep) in [(0.0, 8), (-2.5, 3), (EXCLUDED, 12)] {
                    let hyp = Hypothesis {
                        tokens: tokens.clone(),
                        score,
                        finished: false,
                    };
                    let mut lp = logits::log_softmax(&row);
                    logits::process(&mut lp, &tokens, new_tokens, g);
                    let scores: Vec<f32> = lp.iter().map(|v| v + score).collect();
                    let written: Vec<(f32, usize)> = top_k_indices(&scores, keep)
                        .into_iter()
                        .map(|i| (scores[i], 600 + i))
                        .collect();
                    let ranked = row_continuations(&row, &hyp, 600, keep, new_tokens, g);
                    let context = format!("config {c}, {tokens:?}, score {score}, keep {keep}");
                    assert_eq!(ranked.len(), written.len(), "{context}");
                    for (r, w) in ranked.iter().zip(&written) {
                        assert_eq!((r.0.to_bits(), r.1), (w.0.to_bits(), w.1), "{context}");
                    }
                    let plan = logits::Processors::plan(tokens.len(), new_tokens, g);
                    effects.push(plan.effect(&tokens, row.len(), g));
                }
            }
        }
        // Each kind of effect was met: nothing, bans, a forced token, a rescored row.
        assert!(effects.contains(&Effect::Bans(Vec::new())));
        assert!(effects.contains(&Effect::Bans(vec![2, 7])));
        assert!(effects.contains(&Effect::Bans(vec![0, 2, 5, 7, 9])));
        assert!(effects.contains(&Effect::Forces(7)));
        assert!(effects.contains(&Effect::Forces(13)));
        assert!(effects.contains(&Effect::Rescores));
    }

    #[test]
    fn a_row_without_processors_ranks_the_bits_of_written_out_log_probabilities() {
        // A vocabulary-sized row of mixed magnitudes with ties, as logits come.
        let row: Vec<f32> = (0..5000)
            .map(|i| ((i * 7919) % 997) as f32 * 0.013 - 6.0 + (i % 3) as f32 * 1e-3)
            .collect();
        let hyp = Hypothesis {
            tokens: vec![0, 5, 9],
            score: -2.75,
            finished: false,
        };
        let plain = GenerationConfig::default();
        // The reference: every score written out, then fully sorted.
        let scores: Vec<f32> = logits::log_softmax(&row)
            .into_iter()
            .map(|v| v + hyp.score)
            .collect();
        let written: Vec<(f32, usize)> = top_k_indices(&scores, 8)
            .into_iter()
            .map(|i| (scores[i], 3 * 5000 + i))
            .collect();
        assert_eq!(
            row_continuations(&row, &hyp, 3 * 5000, 8, 2, &plain),
            written
        );
        // With a processor acting, the written-out path still applies it.
        let no_repeat = GenerationConfig {
            no_repeat_ngram_size: 1,
            ..GenerationConfig::default()
        };
        let best = written[0].1 - 3 * 5000;
        let banned = Hypothesis {
            tokens: vec![best as u32],
            ..hyp
        };
        let ranked = row_continuations(&row, &banned, 3 * 5000, 8, 2, &no_repeat);
        assert!(ranked.iter().all(|&(_, i)| i != written[0].1));
        assert_eq!(ranked[0], written[1]);
    }
}
