//! An encoder with its task head, loaded from and saved to Hugging Face folders.

use std::path::Path;

use candle_core::{DType, Device, Tensor};

use super::config::{Activation, EncoderConfig, Family, Task};
use super::layers::{linear, Embeddings, TransformerLayer};
use super::names::normalise_names;
use crate::data::LabelMap;
use crate::error::{Error, Result};
use crate::models::checkpoint::{load_checkpoint, read_weights};
use crate::nn::attention::padding_bias;
use crate::nn::norm::Norm;
use crate::nn::projection::Projection;
use crate::nn::{dropout, side_by_side, ForwardCtx, Init, ParamBuilder, ParamStore};
use crate::text::SubwordTokenizer;
use crate::train::ParamGroup;

/// A batch of token ids, all rows of equal length.
#[derive(Debug, Clone, Default)]
pub struct EncoderInput {
    /// Token ids (batch, seq).
    pub input_ids: Vec<Vec<u32>>,
    /// 1 for tokens, 0 for padding (batch, seq).
    pub attention_mask: Vec<Vec<u32>>,
    /// Segment ids (batch, seq); `None`: all 0.
    pub token_type_ids: Option<Vec<Vec<u32>>>,
}

impl EncoderInput {
    /// Rows of ids padded to the longest with `pad_id`, with their attention mask.
    pub fn from_rows(rows: &[&[u32]], pad_id: u32) -> Self {
        let len = rows.iter().map(|r| r.len()).max().unwrap_or(0).max(1);
        let mut input = Self::default();
        for row in rows {
            let mut ids = row.to_vec();
            let mut mask = vec![1; ids.len()];
            ids.resize(len, pad_id);
            mask.resize(len, 0);
            input.input_ids.push(ids);
            input.attention_mask.push(mask);
        }
        input
    }
}

/// Indices of `lengths` sorted by length, cut into batches of `batch_size`: batches of
/// similar lengths pad little. Sort by token counts — character counts pad far more.
pub fn length_batches(lengths: &[usize], batch_size: usize) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..lengths.len()).collect();
    order.sort_by_key(|&i| lengths[i]);
    order
        .chunks(batch_size.max(1))
        .map(<[usize]>::to_vec)
        .collect()
}

/// What `each` makes of every batch of [`length_batches`], one item per index of the batch,
/// answered in the order of `lengths`. With several batches they run side by side, one per
/// thread ([`side_by_side`]), longest first so that the last to finish are short ones.
pub fn map_length_batches<T: Send>(
    lengths: &[usize],
    batch_size: usize,
    each: impl Fn(&[usize]) -> Result<Vec<T>> + Sync,
) -> Result<Vec<T>> {
    let mut batches = length_batches(lengths, batch_size);
    batches.reverse();
    let answers = side_by_side::map(batches.len(), |b| each(&batches[b]))?;
    // Each batch's items in the order of its indices; every index is in one batch.
    let mut items: Vec<(usize, T)> = (batches.iter().flatten().copied())
        .zip(answers.into_iter().flatten())
        .collect();
    items.sort_unstable_by_key(|item| item.0);
    Ok(items.into_iter().map(|item| item.1).collect())
}

/// The last hidden states of a batch's real tokens ([`EncoderModel::forward_packed`]).
#[derive(Debug, Clone)]
pub struct PackedStates {
    /// (tokens, hidden): each sequence's tokens after those of the sequences before it.
    pub hidden: Tensor,
    /// Tokens of each sequence.
    pub lengths: Vec<usize>,
}

impl PackedStates {
    /// Sequence `b`'s states (its tokens, hidden).
    pub fn sequence(&self, b: usize) -> Result<Tensor> {
        let Some(&len) = self.lengths.get(b) else {
            let count = self.lengths.len();
            return Err(Error::config(
                "sequence",
                format!("{b} of {count} sequences"),
            ));
        };
        let start = self.lengths[..b].iter().sum();
        Ok(self.hidden.narrow(0, start, len)?)
    }
}

/// What a forward pass returns; the fields a head does not make are `None`.
#[derive(Debug, Clone)]
pub struct EncoderOutput {
    /// Last layer's hidden states (batch, seq, hidden).
    pub last_hidden_state: Tensor,
    /// `tanh(W h_[CLS] + b)` for models with a pooler (batch, hidden).
    pub pooler_output: Option<Tensor>,
    /// Masked-LM (batch, seq, vocab), sequence (batch, labels) or token (batch, seq, labels)
    /// logits.
    pub logits: Option<Tensor>,
    /// Next-sentence logits (batch, 2).
    pub seq_relationship_logits: Option<Tensor>,
    /// Span-start logits (batch, seq).
    pub start_logits: Option<Tensor>,
    /// Span-end logits (batch, seq).
    pub end_logits: Option<Tensor>,
}

struct MlmHead {
    dense: Projection,
    norm: Norm,
    bias: Tensor,
    activation: Activation,
}

impl MlmHead {
    fn new(c: &EncoderConfig, vb: &ParamBuilder) -> Result<Self> {
        let (h, std, eps) = (c.hidden_size, c.initializer_range, c.layer_norm_eps);
        let (dense, norm, bias) = match c.family {
            Family::Bert => {
                let p = vb.pp("cls.predictions");
                (
                    linear(&p, "transform.dense", h, h, std)?,
                    Norm::layer(&p, "transform.LayerNorm", h, eps)?,
                    p.param("bias", &[c.vocab_size], Init::Zeros)?,
                )
            }
            Family::Roberta => {
                let p = vb.pp("lm_head");
                (
                    linear(&p, "dense", h, h, std)?,
                    Norm::layer(&p, "layer_norm", h, eps)?,
                    p.param("bias", &[c.vocab_size], Init::Zeros)?,
                )
            }
            Family::DistilBert => (
                linear(vb, "vocab_transform", h, h, std)?,
                Norm::layer(vb, "vocab_layer_norm", h, 1e-12)?,
                vb.param("vocab_projector.bias", &[c.vocab_size], Init::Zeros)?,
            ),
        };
        let activation = match c.family {
            Family::Roberta => Activation::Gelu,
            _ => c.activation,
        };
        Ok(Self {
            dense,
            norm,
            bias,
            activation,
        })
    }

    /// Vocabulary logits through the decoder tied to the word embeddings.
    fn forward(&self, hidden: &Tensor, word_embeddings: &Tensor) -> Result<Tensor> {
        let (b, s, h) = hidden.dims3()?;
        let x = self
            .norm
            .forward(&self.activation.apply(&self.dense.forward(hidden)?)?)?;
        let logits = x
            .reshape((b * s, h))?
            .matmul(&word_embeddings.t()?)?
            .broadcast_add(&self.bias)?;
        Ok(logits.reshape((b, s, ()))?)
    }
}

enum SequenceHead {
    /// BERT: dropout → classifier on the pooler output.
    Pooled(Projection),
    /// RoBERTa: dropout → dense → tanh → dropout → out_proj on the first token.
    TwoLayer(Projection, Projection),
    /// DistilBERT: pre_classifier → ReLU → dropout → classifier on the first token.
    PreClassifier(Projection, Projection),
}

enum Head {
    None,
    MaskedLm(MlmHead),
    PreTraining(MlmHead, Projection),
    Sequence(SequenceHead),
    Token(Projection),
    Span(Projection),
}

/// BERT, DistilBERT or RoBERTa with one of its heads, parameters named as in transformers.
pub struct EncoderModel {
    /// The hyperparameters.
    pub config: EncoderConfig,
    /// The tokenizer of the folder, when it has one.
    pub tokenizer: Option<SubwordTokenizer>,
    /// Head parameters that the checkpoint did not have and were freshly initialised.
    pub newly_initialized: Vec<String>,
    params: ParamStore,
    embeddings: Embeddings,
    layers: Vec<TransformerLayer>,
    pooler: Option<Projection>,
    head: Head,
}

impl EncoderModel {
    /// A model with fresh weights (normal with `initializer_range`, seeded).
    pub fn new(config: EncoderConfig, device: &Device, seed: u64) -> Result<Self> {
        Self::build(config, ParamStore::new(device.clone()), seed)
    }

    /// The model's parameters created in `params` (see [`ParamStore::for_checkpoint`]).
    fn build(config: EncoderConfig, params: ParamStore, seed: u64) -> Result<Self> {
        let root = params.builder(seed);
        let c = &config;
        let base = if c.task == Task::Base {
            root.clone()
        } else {
            root.pp(c.family.base_prefix())
        };
        let embeddings = Embeddings::new(c, &base)?;
        let layer_root = match c.family {
            Family::DistilBert => base.pp("transformer.layer"),
            _ => base.pp("encoder.layer"),
        };
        let layers = (0..c.num_layers)
            .map(|i| TransformerLayer::new(c, &layer_root.pp(&i.to_string())))
            .collect::<Result<Vec<_>>>()?;
        let has_pooler = match c.family {
            Family::Bert => matches!(
                c.task,
                Task::Base | Task::PreTraining | Task::SequenceClassification
            ),
            Family::Roberta => c.task == Task::Base,
            Family::DistilBert => false,
        };
        let (h, std) = (c.hidden_size, c.initializer_range);
        let pooler = has_pooler
            .then(|| linear(&base, "pooler.dense", h, h, std))
            .transpose()?;
        let head = match c.task {
            Task::Base => Head::None,
            Task::MaskedLm => Head::MaskedLm(MlmHead::new(c, &root)?),
            Task::PreTraining => Head::PreTraining(
                MlmHead::new(c, &root)?,
                linear(&root, "cls.seq_relationship", h, 2, std)?,
            ),
            Task::SequenceClassification => Head::Sequence(match c.family {
                Family::Bert => {
                    SequenceHead::Pooled(linear(&root, "classifier", h, c.num_labels, std)?)
                }
                Family::Roberta => SequenceHead::TwoLayer(
                    linear(&root, "classifier.dense", h, h, std)?,
                    linear(&root, "classifier.out_proj", h, c.num_labels, std)?,
                ),
                Family::DistilBert => SequenceHead::PreClassifier(
                    linear(&root, "pre_classifier", h, h, std)?,
                    linear(&root, "classifier", h, c.num_labels, std)?,
                ),
            }),
            Task::TokenClassification => {
                Head::Token(linear(&root, "classifier", h, c.num_labels, std)?)
            }
            Task::QuestionAnswering => Head::Span(linear(&root, "qa_outputs", h, 2, std)?),
        };
        Ok(Self {
            config,
            tokenizer: None,
            newly_initialized: Vec::new(),
            params,
            embeddings,
            layers,
            pooler,
            head,
        })
    }

    /// Loads a Hugging Face folder. `task` picks a head other than the one config.json names
    /// (its parameters start fresh, as transformers does when fine-tuning from a base model);
    /// `labels` sets a classification head's classes.
    pub fn from_pretrained(
        dir: &Path,
        task: Option<Task>,
        labels: Option<LabelMap>,
        device: &Device,
    ) -> Result<Self> {
        // config.json read once: as the file says, and with the requested head.
        let raw: serde_json::Value = crate::models::folder::read_config(dir)?;
        let path = dir.join("config.json");
        let file_config = EncoderConfig::from_json(raw.clone(), &path, None)?;
        let mut config = EncoderConfig::from_json(raw, &path, task)?;
        if let Some(labels) = labels {
            config = config.with_labels(labels);
        }
        let same_head =
            config.task == file_config.task && config.num_labels == file_config.num_labels;
        let mut model = Self::build(config, ParamStore::for_checkpoint(device.clone()), 0)?;
        let (tensors, file) = read_weights(dir)?;
        let names = model.params.names();
        let prefix = model.config.family.base_prefix();
        let tensors = normalise_names(tensors, prefix, &names);
        let encoder_prefix = if model.config.task == Task::Base {
            String::new()
        } else {
            format!("{prefix}.")
        };
        // A head other than the checkpoint's (or of another size: other labels) starts fresh;
        // a pooler the checkpoint lacks too, but one of the wrong shape is an error.
        let fresh_allowed = |name: &str| {
            let pooler = name.contains("pooler.");
            let head = !name.starts_with(&encoder_prefix);
            let missing_pooler = pooler && !tensors.contains_key(name);
            !same_head && (head || missing_pooler)
        };
        let report = load_checkpoint(&model.params, &tensors, &file, &fresh_allowed)?;
        model.newly_initialized = report.newly_initialized;
        model.tokenizer = crate::models::folder::load_tokenizer(dir)?;
        Ok(model)
    }

    /// Refuses a model whose head `from_pretrained` had to start fresh: right for fine-tuning,
    /// random outputs for inference (pipelines, prediction). The error names the folder, the
    /// missing head and its first tensor.
    pub fn ensure_trained(&self, dir: &Path) -> Result<()> {
        match self.newly_initialized.first() {
            None => Ok(()),
            Some(name) => Err(Error::folder(
                dir.join("config.json"),
                format!(
                    "the checkpoint has no trained {} head (tensor '{name}' would be random); \
                     fine-tune it first (prosa train)",
                    self.config
                        .task
                        .class_name(self.config.family)
                        .unwrap_or_default()
                ),
            )),
        }
    }

    /// Writes a folder transformers loads with `from_pretrained`: config.json,
    /// model.safetensors (tied decoder weights are not repeated, as transformers saves them) and
    /// tokenizer.json when the model has a tokenizer. Atomic: a failed save leaves `dir` as it was.
    pub fn save_pretrained(&self, dir: &Path) -> Result<()> {
        let tokenizer = self
            .tokenizer
            .as_ref()
            .map(|t| t.to_json_bytes())
            .transpose()?
            .map(|bytes| ("tokenizer.json", bytes));
        let folder = crate::models::folder::ModelFolder {
            config: self.config.to_json(),
            extra_files: tokenizer.into_iter().collect(),
        };
        crate::models::folder::save(dir, &folder, &self.params)
    }

    /// The parameters (for the optimizer).
    pub fn params(&self) -> &ParamStore {
        &self.params
    }

    /// The device the model runs on.
    pub fn device(&self) -> &Device {
        self.params.device()
    }

    /// Runs the model on a batch.
    pub fn forward(&self, input: &EncoderInput, ctx: &mut ForwardCtx) -> Result<EncoderOutput> {
        self.forward_heads(input, false, ctx)
    }

    /// The logits of a sequence-classification head (batch, labels), the last layer run for each
    /// sequence's first token only — the one token such a head reads
    /// ([`TransformerLayer::forward_first`]): the same values as [`EncoderModel::forward`]'s
    /// logits for a sixth of the last layer's work. Other heads: their `forward` logits.
    pub fn sequence_logits(&self, input: &EncoderInput, ctx: &mut ForwardCtx) -> Result<Tensor> {
        let first_only = matches!(self.head, Head::Sequence(_));
        self.forward_heads(input, first_only, ctx)?
            .logits
            .ok_or_else(|| Error::config("head", "the model made no logits"))
    }

    /// [`EncoderModel::forward`]; with `first_only`, the last layer makes the first token's
    /// states only, and `last_hidden_state` holds them alone (batch, 1, hidden).
    fn forward_heads(
        &self,
        input: &EncoderInput,
        first_only: bool,
        ctx: &mut ForwardCtx,
    ) -> Result<EncoderOutput> {
        let seq = input.input_ids.first().map_or(0, Vec::len);
        if input.input_ids.is_empty() || seq == 0 {
            return Err(Error::config("input_ids", "empty batch"));
        }
        self.check_input(input)?;
        let mut x =
            self.embeddings
                .forward(&input.input_ids, input.token_type_ids.as_deref(), ctx)?;
        let bias = padding_bias(&input.attention_mask, DType::F32, self.device())?;
        let last = self.layers.len().saturating_sub(1);
        for (i, layer) in self.layers.iter().enumerate() {
            let first = if first_only && i == last {
                layer.forward_first(&x, &bias, ctx)?
            } else {
                None
            };
            x = match first {
                Some(first) => first,
                None => layer.forward(&x, &bias, ctx)?,
            };
        }
        let first = || x.narrow(1, 0, 1).and_then(|t| t.squeeze(1));
        let pooler_output = match &self.pooler {
            Some(p) => Some(p.forward(&first()?)?.tanh()?),
            None => None,
        };
        let mut out = EncoderOutput {
            last_hidden_state: x.clone(),
            pooler_output: pooler_output.clone(),
            logits: None,
            seq_relationship_logits: None,
            start_logits: None,
            end_logits: None,
        };
        let p = self.config.classifier_dropout;
        match &self.head {
            Head::None => {}
            Head::MaskedLm(mlm) => out.logits = Some(mlm.forward(&x, &self.embeddings.word)?),
            Head::PreTraining(mlm, nsp) => {
                out.logits = Some(mlm.forward(&x, &self.embeddings.word)?);
                let pooled = pooler_output.ok_or_else(|| Error::config("pooler", "missing"))?;
                out.seq_relationship_logits = Some(nsp.forward(&pooled)?);
            }
            Head::Sequence(head) => {
                out.logits = Some(match head {
                    SequenceHead::Pooled(classifier) => {
                        let pooled =
                            pooler_output.ok_or_else(|| Error::config("pooler", "missing"))?;
                        classifier.forward(&dropout(&pooled, p, ctx)?)?
                    }
                    SequenceHead::TwoLayer(dense, out_proj) => {
                        let h = dense.forward(&dropout(&first()?, p, ctx)?)?.tanh()?;
                        out_proj.forward(&dropout(&h, p, ctx)?)?
                    }
                    SequenceHead::PreClassifier(pre, classifier) => {
                        let h = pre.forward(&first()?)?.relu()?;
                        classifier.forward(&dropout(&h, p, ctx)?)?
                    }
                })
            }
            Head::Token(classifier) => {
                out.logits = Some(classifier.forward(&dropout(&x, p, ctx)?)?)
            }
            Head::Span(qa) => {
                let logits = qa.forward(&x)?;
                out.start_logits = Some(logits.narrow(2, 0, 1)?.squeeze(2)?.contiguous()?);
                out.end_logits = Some(logits.narrow(2, 1, 1)?.squeeze(2)?.contiguous()?);
            }
        }
        Ok(out)
    }

    /// The last hidden states of `rows` (token ids, no padding; token types 0) for feature
    /// extraction, without the head: the layers run on the rows packed one after another,
    /// where the attention packs them (inference of f32 on the CPU) — no padded rows projected,
    /// normed or attended, and the same values as the real rows of a padded batch — else on a
    /// padded batch whose real rows are gathered.
    pub fn forward_packed(&self, rows: &[&[u32]], ctx: &mut ForwardCtx) -> Result<PackedStates> {
        let lengths: Vec<usize> = rows.iter().map(|r| r.len()).collect();
        let longest = lengths.iter().copied().max().unwrap_or(0);
        if longest == 0 {
            return Err(Error::config("input_ids", "empty batch"));
        }
        self.check_ids(longest, rows.iter().flat_map(|r| r.iter().copied()))?;
        let mut x = self.embeddings.forward_packed(rows, ctx)?;
        let packs =
            lengths.iter().all(|&n| n > 0) && self.layers.iter().all(|layer| layer.packs(&x, ctx));
        let hidden = if packs {
            for layer in &self.layers {
                x = layer.forward_packed(&x, &lengths, ctx)?;
            }
            x
        } else {
            let input = EncoderInput::from_rows(rows, self.config.pad_token_id);
            let padded = self.forward(&input, ctx)?.last_hidden_state;
            let own = |(b, &n): (usize, &usize)| padded.get(b)?.narrow(0, 0, n);
            let parts = lengths
                .iter()
                .enumerate()
                .map(own)
                .collect::<candle_core::Result<Vec<_>>>()?;
            Tensor::cat(&parts, 0)?
        };
        Ok(PackedStates { hidden, lengths })
    }

    fn check_input(&self, input: &EncoderInput) -> Result<()> {
        let seq = input.input_ids[0].len();
        let rows_ok = |rows: &[Vec<u32>]| {
            rows.len() == input.input_ids.len() && rows.iter().all(|r| r.len() == seq)
        };
        if !rows_ok(&input.input_ids) || !rows_ok(&input.attention_mask) {
            return Err(Error::config(
                "input_ids",
                "rows of different lengths (pad the batch)",
            ));
        }
        self.check_ids(seq, input.input_ids.iter().flatten().copied())?;
        let c = &self.config;
        if let Some(types) = &input.token_type_ids {
            if !rows_ok(types)
                || types
                    .iter()
                    .flatten()
                    .any(|&t| t as usize >= c.type_vocab_size.max(1))
            {
                return Err(Error::config(
                    "token_type_ids",
                    format!("must match input_ids and be below {}", c.type_vocab_size),
                ));
            }
        }
        Ok(())
    }
}

impl EncoderModel {
    /// Rows of at most `longest` tokens fit the model's positions, and the `ids` its vocabulary.
    fn check_ids(&self, longest: usize, mut ids: impl Iterator<Item = u32>) -> Result<()> {
        let c = &self.config;
        let limit = match c.family {
            Family::Roberta => c
                .max_position_embeddings
                .saturating_sub(c.pad_token_id as usize + 1),
            _ => c.max_position_embeddings,
        };
        if longest > limit {
            return Err(Error::config(
                "input_ids",
                format!(
                    "{longest} tokens, but the model has {limit} positions (truncate the input)"
                ),
            ));
        }
        match ids.find(|&i| i as usize >= c.vocab_size) {
            Some(bad) => Err(Error::config(
                "input_ids",
                format!("id {bad} is outside the vocabulary ({} ids)", c.vocab_size),
            )),
            None => Ok(()),
        }
    }

    /// Parameter groups that freeze the embeddings and the lower `layers` layers (`None`:
    /// the whole encoder, so only the head trains) — the slides' freezing strategies.
    pub fn freeze_groups(&self, layers: Option<usize>) -> Vec<ParamGroup> {
        let c = &self.config;
        let prefix = c.family.base_prefix();
        let frozen = |pattern: String| ParamGroup {
            pattern,
            frozen: true,
            ..Default::default()
        };
        match layers {
            None => vec![frozen(format!("{prefix}.*"))],
            Some(n) => {
                let stack = match c.family {
                    super::config::Family::DistilBert => "transformer.layer",
                    _ => "encoder.layer",
                };
                let mut groups = vec![frozen(format!("{prefix}.embeddings.*"))];
                groups.extend(
                    (0..n.min(c.num_layers)).map(|i| frozen(format!("{prefix}.{stack}.{i}.*"))),
                );
                groups
            }
        }
    }
}
