//! BERT pretraining from scratch: masked-language modelling and next-sentence prediction
//! (`BertForPreTraining`), as the original paper and the slides describe it.
//!
//! Each example is a pair of segments `(A, B)`; half of the pairs take B from the segment that
//! follows A in its document ("IsNext"), half from a random document ("NotNext"). Masks are drawn
//! anew at every step from the step's seeded generator (dynamic masking): 15% of the non-special
//! tokens are chosen; of those, 80% become `[MASK]`, 10% a random token, 10% stay. The loss is
//! the MLM cross-entropy over the chosen tokens plus the NSP cross-entropy.

use candle_core::{DType, Device, Tensor, D};
use rand::seq::IndexedRandom;
use rand::Rng;
use serde_json::json;

use super::config::{EncoderConfig, Task};
use super::model::{EncoderInput, EncoderModel};
use crate::data::corpus::Document;
use crate::error::{Error, Result};
use crate::nn::loss::cross_entropy;
use crate::nn::{ForwardCtx, ParamStore};
use crate::text::{EncodeOptions, Padding, SubwordTokenizer};
use crate::train::{StepOutput, Trainable};

/// One segment pair, token ids without special tokens.
#[derive(Debug, Clone)]
pub struct PairExample {
    /// Segment A.
    pub a: Vec<u32>,
    /// Segment B.
    pub b: Vec<u32>,
    /// B follows A in its document.
    pub is_next: bool,
}

/// The size of a BERT to pretrain.
#[derive(Debug, Clone, Copy)]
pub struct BertSize {
    /// Transformer layers.
    pub layers: usize,
    /// Hidden width.
    pub hidden: usize,
    /// Attention heads.
    pub heads: usize,
    /// Feed-forward width.
    pub intermediate: usize,
    /// Tokens per example (`[CLS] A [SEP] B [SEP]`).
    pub max_length: usize,
}

/// A `BertForPreTraining` with its WordPiece tokenizer.
pub struct BertPretrainer {
    model: EncoderModel,
    tokenizer: SubwordTokenizer,
    max_length: usize,
    cls: u32,
    sep: u32,
    mask: u32,
    /// Ids that are never chosen for masking or as random replacements.
    special: Vec<u32>,
}

impl BertPretrainer {
    /// A fresh model of `size` for `tokenizer`'s vocabulary (weights seeded by `seed`).
    pub fn new(
        tokenizer: SubwordTokenizer,
        size: BertSize,
        seed: u64,
        device: &Device,
    ) -> Result<Self> {
        let id = |t: &str| {
            tokenizer
                .token_to_id(t)
                .ok_or_else(|| Error::Tokenizer(format!("the vocabulary has no {t}")))
        };
        let (cls, sep, mask, pad) = (id("[CLS]")?, id("[SEP]")?, id("[MASK]")?, id("[PAD]")?);
        let special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
            .iter()
            .filter_map(|t| tokenizer.token_to_id(t))
            .collect();
        let raw = json!({
            "architectures": ["BertForPreTraining"],
            "model_type": "bert",
            "vocab_size": tokenizer.vocab_size(),
            "hidden_size": size.hidden,
            "num_hidden_layers": size.layers,
            "num_attention_heads": size.heads,
            "intermediate_size": size.intermediate,
            "hidden_act": "gelu",
            "hidden_dropout_prob": 0.1,
            "attention_probs_dropout_prob": 0.1,
            "max_position_embeddings": size.max_length,
            "type_vocab_size": 2,
            "initializer_range": 0.02,
            "layer_norm_eps": 1e-12,
            "pad_token_id": pad,
        });
        let config = EncoderConfig::from_json(raw, std::path::Path::new("config.json"), None)?;
        let mut model = EncoderModel::new(config, device, seed)?;
        model.tokenizer = Some(tokenizer.clone());
        Ok(Self {
            model,
            tokenizer,
            max_length: size.max_length,
            cls,
            sep,
            mask,
            special,
        })
    }

    /// The model.
    pub fn model(&self) -> &EncoderModel {
        &self.model
    }

    /// Segment pairs of `documents` for next-sentence prediction: each segment with a following
    /// one becomes A, paired with its successor or (half the time) a random segment of another
    /// document (of the same one, away from A, when there is only one).
    pub fn pairs(&self, documents: &[Document], rng: &mut impl Rng) -> Result<Vec<PairExample>> {
        let options = EncodeOptions {
            add_special_tokens: false,
            padding: Padding::None,
            ..Default::default()
        };
        let encoded: Vec<Vec<Vec<u32>>> = documents
            .iter()
            .map(|d| {
                let texts: Vec<&str> = d.segments.iter().map(String::as_str).collect();
                Ok(self
                    .tokenizer
                    .encode_batch(&texts, None, &options)?
                    .input_ids)
            })
            .collect::<Result<_>>()?;
        let mut out = Vec::new();
        for (d, segments) in encoded.iter().enumerate() {
            for i in 0..segments.len().saturating_sub(1) {
                let is_next = rng.random_bool(0.5);
                let b = if is_next {
                    segments[i + 1].clone()
                } else {
                    // A random segment of a random document (another one when there are
                    // several), never the true successor.
                    let others: Vec<usize> = (0..encoded.len())
                        .filter(|&o| (o != d || encoded.len() == 1) && encoded[o].len() > 1)
                        .collect();
                    let Some(&o) = others.choose(rng) else {
                        continue;
                    };
                    let j = loop {
                        let j = rng.random_range(0..encoded[o].len());
                        if o != d || j != i + 1 {
                            break j;
                        }
                    };
                    encoded[o][j].clone()
                };
                if !segments[i].is_empty() && !b.is_empty() {
                    out.push(PairExample {
                        a: segments[i].clone(),
                        b,
                        is_next,
                    });
                }
            }
        }
        Ok(out)
    }

    /// `[CLS] A [SEP] B [SEP]` cut to the length limit (the longer segment loses tokens first)
    /// and its segment ids.
    fn join(&self, e: &PairExample) -> (Vec<u32>, Vec<u32>) {
        let budget = self.max_length.saturating_sub(3);
        let (mut a, mut b) = (e.a.len(), e.b.len());
        while a + b > budget {
            if a >= b {
                a -= 1;
            } else {
                b -= 1;
            }
        }
        let mut ids = vec![self.cls];
        ids.extend_from_slice(&e.a[..a]);
        ids.push(self.sep);
        let first = ids.len();
        ids.extend_from_slice(&e.b[..b]);
        ids.push(self.sep);
        let types = (0..ids.len()).map(|i| u32::from(i >= first)).collect();
        (ids, types)
    }

    /// A padded batch of joined pairs, with segment ids; with `masking`, each row is corrupted
    /// first and `(flat position, original id)` of every chosen token is collected.
    fn batch_input(
        &self,
        batch: &[&PairExample],
        mut masking: Option<(&mut ForwardCtx, &mut Vec<(u32, u32)>)>,
    ) -> EncoderInput {
        let joined: Vec<(Vec<u32>, Vec<u32>)> = batch.iter().map(|e| self.join(e)).collect();
        let len = joined.iter().map(|(ids, _)| ids.len()).max().unwrap_or(1);
        let pad = self.model.config.pad_token_id;
        let mut input = EncoderInput {
            token_type_ids: Some(Vec::new()),
            ..Default::default()
        };
        for (row, (mut ids, mut types)) in joined.into_iter().enumerate() {
            if let Some((ctx, chosen)) = masking.as_mut() {
                for (i, original) in self.mask_tokens(&mut ids, &mut ctx.rng) {
                    chosen.push(((row * len + i) as u32, original));
                }
            }
            let mut mask = vec![1; ids.len()];
            ids.resize(len, pad);
            types.resize(len, 0);
            mask.resize(len, 0);
            input.input_ids.push(ids);
            input.attention_mask.push(mask);
            if let Some(t) = input.token_type_ids.as_mut() {
                t.push(types);
            }
        }
        input
    }

    /// BERT's masking of one sequence: returns the corrupted ids and `(position, original id)`
    /// of every chosen token.
    pub fn mask_tokens(&self, ids: &mut [u32], rng: &mut impl Rng) -> Vec<(usize, u32)> {
        let vocab = self.model.config.vocab_size as u32;
        let mut chosen = Vec::new();
        for (i, id) in ids.iter_mut().enumerate() {
            if self.special.contains(id) || !rng.random_bool(0.15) {
                continue;
            }
            chosen.push((i, *id));
            let r: f64 = rng.random();
            if r < 0.8 {
                *id = self.mask;
            } else if r < 0.9 {
                *id = loop {
                    let candidate = rng.random_range(0..vocab);
                    if !self.special.contains(&candidate) {
                        break candidate;
                    }
                };
            }
        }
        chosen
    }
}

impl Trainable for BertPretrainer {
    type Example = PairExample;

    fn params(&self) -> &ParamStore {
        self.model.params()
    }

    fn forward_batch(&self, batch: &[&PairExample], ctx: &mut ForwardCtx) -> Result<StepOutput> {
        let mut chosen = Vec::new();
        let input = self.batch_input(batch, Some((&mut *ctx, &mut chosen)));
        let len = input.input_ids[0].len();
        let (mut positions, mut targets): (Vec<u32>, Vec<u32>) = chosen.into_iter().unzip();
        if positions.is_empty() {
            // A batch where no token was drawn: predict the first real token of the first row.
            positions.push(1);
            targets.push(batch[0].a[0]);
        }
        let out = self.model.forward(&input, ctx)?;
        let missing = || Error::config("head", "the pretraining heads made no logits");
        let logits = out.logits.ok_or_else(missing)?;
        let nsp = out.seq_relationship_logits.ok_or_else(missing)?;
        let flat = logits.reshape((batch.len() * len, ()))?;
        let index = Tensor::from_vec(positions, targets.len(), flat.device())?;
        let at_masks = flat.index_select(&index, 0)?;
        let mlm_loss = cross_entropy(&at_masks, &targets, None)?;
        // transformers' NSP labels: 0 = B follows A, 1 = B is random.
        let nsp_targets: Vec<u32> = batch.iter().map(|e| u32::from(!e.is_next)).collect();
        let nsp_loss = cross_entropy(&nsp, &nsp_targets, None)?;
        let predictions = at_masks
            .argmax(D::Minus1)?
            .to_dtype(DType::U32)?
            .to_vec1::<u32>()?;
        Ok(StepOutput {
            loss: (mlm_loss + nsp_loss)?,
            predictions: Some(predictions),
            targets: Some(targets),
        })
    }
}

/// The fraction of `pairs` whose next-sentence label the model predicts right.
pub fn nsp_accuracy(model: &BertPretrainer, pairs: &[PairExample]) -> Result<f64> {
    let mut right = 0;
    for chunk in pairs.chunks(64) {
        let batch: Vec<&PairExample> = chunk.iter().collect();
        let input = model.batch_input(&batch, None);
        let nsp = model
            .model
            .forward(&input, &mut ForwardCtx::eval())?
            .seq_relationship_logits
            .ok_or_else(|| Error::config("head", "no NSP logits"))?;
        let predicted = nsp
            .argmax(D::Minus1)?
            .to_dtype(DType::U32)?
            .to_vec1::<u32>()?;
        right += chunk
            .iter()
            .zip(predicted)
            .filter(|(e, p)| (*p == 0) == e.is_next)
            .count();
    }
    Ok(right as f64 / pairs.len().max(1) as f64)
}

impl BertPretrainer {
    /// Writes the pretrained model as a Hugging Face folder (`BertForPreTraining`, with
    /// tokenizer.json): `prosa pipeline fill-mask` and transformers load it.
    pub fn save(&self, dir: &std::path::Path) -> Result<()> {
        debug_assert_eq!(self.model.config.task, Task::PreTraining);
        self.model.save_pretrained(dir)
    }
}
