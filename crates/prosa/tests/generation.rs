//! `generate()` over the `Generator` trait for an encoder–decoder: a toy model whose "encoder"
//! keeps each source in the cache and whose decoder reads it back one token per step. The
//! sources are encoded once, every row starts from the decoder start token, and greedy search,
//! beam search and several samples per source each read their own source — so the cache rows
//! follow the beams and the copies.

use candle_core::{Device, Tensor};
use prosa::generation::{generate, GenerationCache, GenerationConfig, Generator, Start};
use prosa::text::SubwordTokenizer;
use prosa::Result;

const VOCAB: usize = 8;
const START: u32 = 0;
const EOS: u32 = 7;

/// An "encoder–decoder" that copies its source: the memory is the source ids. It counts how
/// often it encoded.
#[derive(Default)]
struct Copier {
    encodings: std::cell::Cell<usize>,
}

/// The encoded sources, one per row.
struct Memory {
    sources: Vec<Vec<u32>>,
}

impl GenerationCache for Memory {
    fn select_rows(&mut self, rows: &[u32]) -> Result<()> {
        self.sources = rows
            .iter()
            .map(|&r| self.sources[r as usize].clone())
            .collect();
        Ok(())
    }
}

impl Generator for Copier {
    type Cache = Memory;

    fn new_cache(&self) -> Memory {
        Memory {
            sources: Vec::new(),
        }
    }

    fn start(&self, inputs: &[Vec<u32>], _g: &GenerationConfig) -> Result<Start<Memory>> {
        self.encodings.set(self.encodings.get() + 1);
        Ok(Start {
            cache: Memory {
                sources: inputs.to_vec(),
            },
            ids: vec![vec![START]; inputs.len()],
            mask: vec![vec![1]; inputs.len()],
            pad: START,
        })
    }

    /// Decoder position `p` predicts source token `p` (then the end token); a runner-up token
    /// keeps beam search honest.
    fn next_token_logits(
        &self,
        ids: &[Vec<u32>],
        positions: &[Vec<u32>],
        _mask: &[Vec<u32>],
        cache: &mut Memory,
    ) -> Result<Tensor> {
        assert_eq!(ids.len(), cache.sources.len(), "a cache row per sequence");
        let mut logits = vec![0f32; ids.len() * VOCAB];
        for (row, p) in positions.iter().enumerate() {
            let p = *p.last().unwrap() as usize;
            let target = cache.sources[row].get(p).copied().unwrap_or(EOS) as usize;
            logits[row * VOCAB + target] = 4.0;
            logits[row * VOCAB + (target % 6) + 1] += 3.0;
        }
        Ok(Tensor::from_vec(
            logits,
            (ids.len(), 1, VOCAB),
            &Device::Cpu,
        )?)
    }

    fn context_size(&self) -> usize {
        32
    }

    fn tokenizer(&self) -> Result<&SubwordTokenizer> {
        Err(prosa::Error::config("tokenizer", "the toy model has none"))
    }
}

fn config() -> GenerationConfig {
    GenerationConfig {
        eos_token_ids: vec![EOS],
        pad_token_id: Some(START),
        max_new_tokens: Some(10),
        ..GenerationConfig::default()
    }
}

#[test]
fn an_encoder_decoder_decodes_each_source_from_the_start_token() {
    let sources = vec![vec![3, 1, 4, 1], vec![5, 2, 6]];
    let out = generate(&Copier::default(), &sources, &config(), None).unwrap();
    assert_eq!(out.prompt_length, 1);
    assert_eq!(out.new_tokens, [vec![3, 1, 4, 1, EOS], vec![5, 2, 6, EOS]]);
    // transformers' shape: the start token, the tokens, then fill after an early end.
    assert_eq!(out.sequences[1], [START, 5, 2, 6, EOS, START]);
}

#[test]
fn beam_search_and_samples_read_their_own_source_through_reordered_cache_rows() {
    let sources = vec![vec![3, 1, 4, 1], vec![5, 2, 6], vec![2, 2]];
    let beams = GenerationConfig {
        num_beams: 3,
        num_return_sequences: 2,
        ..config()
    };
    let out = generate(&Copier::default(), &sources, &beams, None).unwrap();
    assert_eq!(out.new_tokens.len(), 6);
    for (i, source) in sources.iter().enumerate() {
        let mut want = source.clone();
        want.push(EOS);
        assert_eq!(out.new_tokens[2 * i], want, "best beam of source {i}");
        // The runner-up differs from the best, but still starts from its own source.
        assert_ne!(out.new_tokens[2 * i + 1], want);
    }
    let samples = GenerationConfig {
        do_sample: true,
        num_return_sequences: 2,
        top_k: 1,
        seed: 3,
        ..config()
    };
    let out = generate(&Copier::default(), &sources, &samples, None).unwrap();
    for (i, source) in sources.iter().enumerate() {
        for copy in 0..2 {
            assert_eq!(&out.new_tokens[2 * i + copy][..source.len()], &source[..]);
        }
    }
}

#[test]
fn the_sources_are_encoded_once_whatever_the_search() {
    for num_beams in [1, 4] {
        let model = Copier::default();
        let g = GenerationConfig {
            num_beams,
            ..config()
        };
        generate(&model, &[vec![1, 2], vec![3]], &g, None).unwrap();
        assert_eq!(model.encodings.get(), 1, "{num_beams} beams");
    }
}
