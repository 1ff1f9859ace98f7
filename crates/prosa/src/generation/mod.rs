//! `generate()` with transformers' semantics: greedy search, sampling (temperature, top-k,
//! top-p, seeded), beam search, no-repeat n-grams, repetition penalty, length limits, end
//! tokens and stop strings, and a callback that receives each token as it is chosen.
//!
//! The decoding loops know nothing of a model's insides: they drive any [`Generator`] (a model
//! that turns the newest tokens and a cache into next-token logits), as transformers'
//! `GenerationMixin` drives every model class. Decoder-only models start from the prompts,
//! padded on the left with an attention mask and position ids counted over real tokens (so each
//! row computes exactly what it would alone); encoder–decoders encode their sources once into
//! the cache ([`Generator::Cache`] then also holds the cross-attention keys and values, which
//! beam search reorders with the rest) and start from the decoder start token.

mod beam;
pub mod config;
pub mod logits;
mod streamer;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

pub use config::{EarlyStopping, GenerationConfig};
pub use streamer::TextStreamer;

use candle_core::Tensor;

use crate::error::{Error, Result};
use crate::nn::attention::position_ids;
use crate::text::SubwordTokenizer;

/// What `generate()` needs of a model: where decoding starts, next-token logits of the newest
/// tokens with a cache, the context size, and the tokenizer (for stop strings).
pub trait Generator {
    /// The state kept between steps (key/value caches; for encoder–decoders also the encoder's
    /// keys and values), one row per sequence.
    type Cache: GenerationCache;

    /// A new, empty cache.
    fn new_cache(&self) -> Self::Cache;

    /// Where decoding of `inputs` (token ids, one row per sequence) starts. Decoder-only models
    /// (this default): the prompts padded on the left and an empty cache. An encoder–decoder
    /// encodes its sources here, once, into the cache, and starts every row from
    /// `decoder_start_token_id`.
    fn start(&self, inputs: &[Vec<u32>], g: &GenerationConfig) -> Result<Start<Self::Cache>> {
        let batch = left_pad(self.context_size(), inputs, g)?;
        Ok(Start {
            cache: self.new_cache(),
            ids: batch.ids,
            mask: batch.mask,
            pad: batch.pad,
        })
    }

    /// Logits (rows, 1, vocab) of the last of the newest tokens `ids` (rows, new): `positions`
    /// are their position ids and `attention_mask` (rows, cached + new) marks real tokens (1)
    /// and padding (0) over every position so far. The cache receives the new positions.
    fn next_token_logits(
        &self,
        ids: &[Vec<u32>],
        positions: &[Vec<u32>],
        attention_mask: &[Vec<u32>],
        cache: &mut Self::Cache,
    ) -> Result<Tensor>;

    /// Positions the model can attend to (prompt and new tokens together).
    fn context_size(&self) -> usize;

    /// The tokenizer, needed to match stop strings.
    fn tokenizer(&self) -> Result<&SubwordTokenizer>;
}

/// Where decoding starts: the cache and the rows new tokens extend.
pub struct Start<C> {
    /// The cache (empty, or holding an encoder's output).
    pub cache: C,
    /// The rows, equally long: left-padded prompts, or the decoder start token.
    pub ids: Vec<Vec<u32>>,
    /// 1 for real tokens, 0 for padding, like `ids`.
    pub mask: Vec<Vec<u32>>,
    /// The id that fills padding.
    pub pad: u32,
}

/// A cache whose rows follow the sequences: beam search keeps, repeats and reorders them.
pub trait GenerationCache {
    /// Keeps rows `rows` (in that order; a row may repeat).
    fn select_rows(&mut self, rows: &[u32]) -> Result<()>;

    /// Beam search's re-ranking: keeps `rows`, each of which is a beam of the same prompt as the
    /// row it replaces. Caches with parts equal across one prompt's beams (an encoder's
    /// output) may leave those parts as they are.
    fn reorder_beams(&mut self, rows: &[u32]) -> Result<()> {
        self.select_rows(rows)
    }
}

/// What `generate()` returns.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerationOutput {
    /// Each returned sequence as transformers returns it: left padding, the prompt, the new
    /// tokens, and the fill token after a sequence ended early.
    pub sequences: Vec<Vec<u32>>,
    /// The new tokens of each sequence, without fill (the end token included when one was made).
    pub new_tokens: Vec<Vec<u32>>,
    /// Length of the padded prompts (where new tokens start in `sequences`).
    pub prompt_length: usize,
    /// Beam search: the length-normalised score of each returned sequence.
    pub scores: Option<Vec<f32>>,
}

/// Receives `(row, token)` for every token chosen, as it is chosen (greedy and sampling).
pub type TokenCallback<'a> = &'a mut dyn FnMut(usize, u32);

/// The padded prompts: ids, attention mask, and the pad id used.
pub struct Batch {
    /// Prompts padded on the left to the longest.
    pub ids: Vec<Vec<u32>>,
    /// 1 for real tokens, 0 for padding.
    pub mask: Vec<Vec<u32>>,
    /// The padding id.
    pub pad: u32,
}

/// Prompts padded on the left (empty ones start from `bos_token_id`), checked to leave room in
/// a context of `context` positions.
pub fn left_pad(context: usize, prompts: &[Vec<u32>], g: &GenerationConfig) -> Result<Batch> {
    let pad = g
        .pad_token_id
        .or_else(|| g.eos_token_ids.first().copied())
        .unwrap_or(0);
    let mut prompts: Vec<Vec<u32>> = prompts.to_vec();
    for p in &mut prompts {
        if p.is_empty() {
            match g.bos_token_id {
                Some(bos) => p.push(bos),
                None => {
                    return Err(Error::config(
                        "prompt",
                        "an empty prompt needs a bos_token_id to start from",
                    ))
                }
            }
        }
    }
    let longest = prompts.iter().map(Vec::len).max().unwrap_or(0);
    if longest >= context {
        return Err(Error::config(
            "prompt",
            format!(
                "the prompt has {longest} tokens, but the model's context is {context} tokens \
                 (shorten the prompt to leave room for new tokens)"
            ),
        ));
    }
    let ids = prompts
        .iter()
        .map(|p| {
            let mut row = vec![pad; longest - p.len()];
            row.extend_from_slice(p);
            row
        })
        .collect();
    let mask = prompts
        .iter()
        .map(|p| {
            let mut row = vec![0; longest - p.len()];
            row.extend(std::iter::repeat_n(1, p.len()));
            row
        })
        .collect();
    Ok(Batch { ids, mask, pad })
}

/// Generates continuations of `prompts` (token ids, unpadded). `on_token` sees each token as it
/// is chosen (not with beam search, whose tokens are known only at the end).
pub fn generate<M: Generator>(
    model: &M,
    prompts: &[Vec<u32>],
    g: &GenerationConfig,
    on_token: Option<TokenCallback>,
) -> Result<GenerationOutput> {
    g.validate()?;
    // No backward pass follows: each step's intermediate tensors are freed as soon as used.
    let _no_grad = candle_core::no_grad();
    if prompts.is_empty() {
        return Ok(GenerationOutput {
            sequences: Vec::new(),
            new_tokens: Vec::new(),
            prompt_length: 0,
            scores: None,
        });
    }
    if !g.stop_strings.is_empty() {
        model.tokenizer()?;
    }
    let start = model.start(prompts, g)?;
    let prompt_length = start.ids[0].len();
    let max_length = g.max_total_length(prompt_length).min(model.context_size());
    if g.num_beams > 1 {
        return beam::beam_search(model, start, max_length, g);
    }
    // Sampling several sequences per prompt: repeat each row (transformers' expansion), and
    // the cache's rows with them.
    let copies = if g.do_sample {
        g.num_return_sequences
    } else {
        1
    };
    let Start {
        mut cache,
        ids,
        mask,
        pad,
    } = start;
    let repeat: Vec<u32> = (0..ids.len() * copies)
        .map(|r| (r / copies) as u32)
        .collect();
    if copies > 1 {
        cache.select_rows(&repeat)?;
    }
    let pick = |rows: &[Vec<u32>]| repeat.iter().map(|&r| rows[r as usize].clone()).collect();
    let start = Start {
        ids: pick(&ids),
        mask: pick(&mask),
        cache,
        pad,
    };
    sample_or_greedy(model, start, max_length, g, on_token)
}

/// Greedy search and sampling (transformers' `_sample`).
fn sample_or_greedy<M: Generator>(
    model: &M,
    start: Start<M::Cache>,
    max_length: usize,
    g: &GenerationConfig,
    mut on_token: Option<TokenCallback>,
) -> Result<GenerationOutput> {
    let Start {
        mut cache,
        mut ids,
        mut mask,
        pad,
    } = start;
    let rows = ids.len();
    let prompt_length = ids[0].len();
    let mut rng = ChaCha8Rng::seed_from_u64(g.seed);
    let mut next_position: Vec<u32> = mask.iter().map(|m| m.iter().sum()).collect();
    let mut unfinished = vec![true; rows];
    let mut new_tokens: Vec<Vec<u32>> = vec![Vec::new(); rows];
    let positions = position_ids(&mask);
    let mut logits = model.next_token_logits(&ids, &positions, &mask, &mut cache)?;
    let mut cur_len = prompt_length;
    while cur_len < max_length {
        let vocab = logits.dim(2)?;
        let all = logits.flatten_all()?.to_vec1::<f32>()?;
        let mut chosen = Vec::with_capacity(rows);
        for (r, scores) in all.chunks_exact(vocab).enumerate() {
            let mut scores = scores.to_vec();
            logits::process(&mut scores, &ids[r], cur_len - prompt_length, g);
            let token = if g.do_sample {
                logits::warp(&mut scores, g);
                logits::sample(&scores, &mut rng)
            } else {
                logits::argmax(&scores)
            };
            chosen.push(if unfinished[r] { token } else { pad });
        }
        for (r, &token) in chosen.iter().enumerate() {
            ids[r].push(token);
            mask[r].push(1);
            if unfinished[r] {
                new_tokens[r].push(token);
                if let Some(cb) = on_token.as_mut() {
                    cb(r, token);
                }
                if g.eos_token_ids.contains(&token) || hits_stop_string(model, &new_tokens[r], g)? {
                    unfinished[r] = false;
                }
            }
        }
        cur_len += 1;
        if cur_len >= max_length || !unfinished.iter().any(|&u| u) {
            break;
        }
        let step: Vec<Vec<u32>> = chosen.iter().map(|&t| vec![t]).collect();
        let positions: Vec<Vec<u32>> = next_position.iter().map(|&p| vec![p]).collect();
        next_position.iter_mut().for_each(|p| *p += 1);
        logits = model.next_token_logits(&step, &positions, &mask, &mut cache)?;
    }
    Ok(GenerationOutput {
        sequences: ids,
        new_tokens,
        prompt_length,
        scores: None,
    })
}

/// True when the text of `new_tokens` contains one of the stop strings.
fn hits_stop_string<M: Generator>(
    model: &M,
    new_tokens: &[u32],
    g: &GenerationConfig,
) -> Result<bool> {
    if g.stop_strings.is_empty() {
        return Ok(false);
    }
    let text = model.tokenizer()?.decode(new_tokens, false)?;
    Ok(g.stop_strings.iter().any(|s| text.contains(s.as_str())))
}
