//! The decoder-only language model (`GPT2LMHeadModel`, `LlamaForCausalLM`): embeddings, a stack
//! of pre-norm blocks, a final norm and the output layer, with Hugging Face parameter names so a
//! folder loads and saves by name.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use candle_core::{DType, Device, Tensor};

use super::block::Block;
use super::config::{DecoderConfig, DecoderFamily};
use super::fused_decode::FusedDecoder;
use super::parts::Parts;
use super::token_table::TokenTable;
use crate::error::{Error, Result};
use crate::generation::{GenerationCache, GenerationConfig, Generator};
use crate::models::checkpoint::{load_checkpoint, read_weights};
use crate::models::folder::{self, ModelFolder};
use crate::nn::attention::{padding_bias, position_ids, Rotary};
use crate::nn::kv_cache::{KvCache, LayerCache};
use crate::nn::loss::softmax_cross_entropy;
use crate::nn::norm::Norm;
use crate::nn::projection::Projection;
use crate::nn::rope::rope_tables;
use crate::nn::{dropout, ForwardCtx, ParamStore};
use crate::text::SubwordTokenizer;

/// A decoder-only causal language model.
pub struct DecoderModel {
    /// The hyperparameters.
    pub config: DecoderConfig,
    params: ParamStore,
    /// Token embeddings (vocab, hidden).
    embed: TokenTable,
    /// Learned position embeddings (GPT-2).
    positions: Option<Tensor>,
    blocks: Vec<Block>,
    final_norm: Norm,
    lm_head: Projection,
    /// The tokenizer of the folder or GGUF file, if it has one.
    pub tokenizer: Option<SubwordTokenizer>,
    /// Generation defaults (`generation_config.json`, or the GGUF metadata).
    pub generation: GenerationConfig,
    /// The chat template (Jinja) of the tokenizer, if any.
    pub chat_template: Option<String>,
    /// Where the model came from, for error messages.
    pub source: PathBuf,
    /// The one-token decode plan, made at the first decode step (`None` inside: not fusable).
    fused: OnceLock<Option<FusedDecoder>>,
}

impl std::fmt::Debug for DecoderModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecoderModel")
            .field("family", &self.config.family)
            .field("source", &self.source)
            .finish()
    }
}

impl DecoderModel {
    /// A freshly initialised model (transformers' initialisation), parameters seeded by `seed`.
    pub fn new(config: DecoderConfig, device: &Device, seed: u64) -> Result<Self> {
        Self::build(config, ParamStore::new(device.clone()), seed)
    }

    /// The model's parameters created in `params` (see [`ParamStore::for_checkpoint`]).
    fn build(config: DecoderConfig, params: ParamStore, seed: u64) -> Result<Self> {
        config
            .validate()
            .map_err(|message| Error::config("model", message))?;
        let vb = params.builder(seed);
        let parts = match config.family {
            DecoderFamily::Gpt2 => super::gpt2::build(&config, &vb)?,
            DecoderFamily::Llama => super::llama::build(&config, &vb)?,
        };
        Ok(Self::assemble(config, params, parts, PathBuf::new()))
    }

    pub(crate) fn assemble(
        config: DecoderConfig,
        params: ParamStore,
        parts: Parts,
        source: PathBuf,
    ) -> Self {
        let generation = config.generation_defaults();
        Self {
            config,
            params,
            embed: parts.embed,
            positions: parts.positions,
            blocks: parts.blocks,
            final_norm: parts.final_norm,
            lm_head: parts.lm_head,
            tokenizer: None,
            generation,
            chat_template: None,
            source,
            fused: OnceLock::new(),
        }
    }

    /// Loads a Hugging Face folder (`config.json`, safetensors, optional `tokenizer.json`,
    /// `generation_config.json`, `tokenizer_config.json` with a chat template) or a `.gguf` file.
    pub fn from_pretrained(path: &Path, device: &Device) -> Result<Self> {
        if path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("gguf"))
        {
            let gguf = super::gguf::read(path, device)?;
            let mut model = Self::assemble(
                gguf.config,
                ParamStore::new(device.clone()),
                gguf.parts,
                path.to_path_buf(),
            );
            model.tokenizer = Some(gguf.tokenizer);
            model.chat_template = gguf.chat_template;
            return Ok(model);
        }
        if !path.is_dir() {
            return Err(Error::folder(
                path,
                "not found (give a model folder with config.json, or a .gguf file)",
            ));
        }
        let config = DecoderConfig::from_folder(path)?;
        let mut model = Self::build(config, ParamStore::for_checkpoint(device.clone()), 0)?;
        let (tensors, file) = read_weights(path)?;
        let prefix = match model.config.family {
            DecoderFamily::Gpt2 => "transformer.",
            DecoderFamily::Llama => "model.",
        };
        let tied = model.config.tie_word_embeddings;
        let tensors = tensors
            .into_iter()
            .filter(|(name, _)| {
                !(name.ends_with(".attn.bias")
                    || name.ends_with(".attn.masked_bias")
                    || name.ends_with("rotary_emb.inv_freq")
                    || (tied && name == "lm_head.weight"))
            })
            .map(|(name, t)| {
                // Some GPT-2 checkpoints store the base model's names without `transformer.`.
                if name.starts_with(prefix) || name.starts_with("lm_head.") {
                    (name, t)
                } else {
                    (format!("{prefix}{name}"), t)
                }
            })
            .collect();
        load_checkpoint(&model.params, &tensors, &file, &|_| false)?;
        model.tokenizer = folder::load_tokenizer(path)?;
        model.chat_template = super::chat::chat_template(path)?;
        model.generation = GenerationConfig::from_folder(path, model.config.generation_defaults())?;
        model.source = path.to_path_buf();
        Ok(model)
    }

    /// Writes a folder transformers loads: `config.json`, `model.safetensors`,
    /// `generation_config.json` and, when the model has one, `tokenizer.json`. Atomic: a failed
    /// save leaves `dir` as it was.
    pub fn save_pretrained(&self, dir: &Path) -> Result<()> {
        if self.params.names().is_empty() {
            return Err(Error::folder(
                dir,
                "a model read from a GGUF file cannot be saved as safetensors (its weights are quantized)",
            ));
        }
        let generation = serde_json::to_vec_pretty(&self.generation.to_json())
            .map_err(|e| Error::config("generation_config", e.to_string()))?;
        let mut extra_files = vec![("generation_config.json", generation)];
        if let Some(tk) = &self.tokenizer {
            extra_files.push(("tokenizer.json", tk.to_json_bytes()?));
        }
        let contents = ModelFolder {
            config: self.config.to_json(),
            extra_files,
        };
        folder::save(dir, &contents, &self.params)
    }

    /// Sets the dropout of every layer (embeddings, attention, residual branches: GPT-2's
    /// `resid_pdrop`/`embd_pdrop`/`attn_pdrop`, Llama's `attention_dropout`), as
    /// `from_pretrained(..., resid_pdrop=p)` does in transformers.
    pub fn set_dropout(&mut self, p: f32) {
        self.config.dropout = p;
        let gpt2 = self.config.family == DecoderFamily::Gpt2;
        for block in &mut self.blocks {
            block.attention.attention_dropout = p;
            if gpt2 {
                block.attention.output_dropout = p;
                block.dropout = p;
            }
        }
    }

    /// The trainable parameters (empty for a GGUF model).
    pub fn params(&self) -> &ParamStore {
        &self.params
    }

    /// The device the weights live on.
    pub fn device(&self) -> &Device {
        self.embed.device()
    }

    /// The tokenizer, or an error naming where it should have been.
    pub fn tokenizer(&self) -> Result<&SubwordTokenizer> {
        self.tokenizer.as_ref().ok_or_else(|| {
            Error::folder(
                self.source.join("tokenizer.json"),
                "the model has no tokenizer (tokenizer.json is missing); \
                 text cannot be encoded or decoded",
            )
        })
    }

    /// Logits (batch, seq, vocab) of the newest tokens `ids` (batch, seq): `positions` are their
    /// position ids and `attention_mask` (batch, cached + seq) marks real tokens (1) and padding
    /// (0) over the cached positions and these. With `last_only`, only the last position's
    /// logits are computed (batch, 1, vocab).
    pub fn forward(
        &self,
        ids: &[Vec<u32>],
        positions: &[Vec<u32>],
        attention_mask: &[Vec<u32>],
        cache: Option<&mut KvCache>,
        ctx: &mut ForwardCtx,
        last_only: bool,
    ) -> Result<Tensor> {
        let hidden = self.final_states(ids, positions, attention_mask, cache, ctx, last_only)?;
        self.lm_head.forward(&hidden)
    }

    /// The final hidden states (batch, seq, hidden), after the last norm.
    pub fn hidden_states(
        &self,
        ids: &[Vec<u32>],
        positions: &[Vec<u32>],
        attention_mask: &[Vec<u32>],
        cache: Option<&mut KvCache>,
        ctx: &mut ForwardCtx,
    ) -> Result<Tensor> {
        self.final_states(ids, positions, attention_mask, cache, ctx, false)
    }

    /// [`DecoderModel::hidden_states`]; with `last_only`, the last block makes the last
    /// position's states alone (batch, 1, hidden) ([`Block::forward`]).
    fn final_states(
        &self,
        ids: &[Vec<u32>],
        positions: &[Vec<u32>],
        attention_mask: &[Vec<u32>],
        mut cache: Option<&mut KvCache>,
        ctx: &mut ForwardCtx,
        last_only: bool,
    ) -> Result<Tensor> {
        let (batch, seq) = (ids.len(), ids.first().map_or(0, Vec::len));
        let device = self.device().clone();
        let flat: Vec<u32> = ids.iter().flatten().copied().collect();
        let flat_positions: Vec<u32> = positions.iter().flatten().copied().collect();
        let (mut x, tables) = self.embed_tokens(flat, &flat_positions, (batch, seq), ctx)?;
        let rotary = tables.as_ref().map(|(cos, sin)| Rotary {
            cos,
            sin,
            style: self.config.rope_style,
        });
        let pad_bias = padding_bias(attention_mask, DType::F32, &device)?;
        let last = self.blocks.len().saturating_sub(1);
        for (i, block) in self.blocks.iter().enumerate() {
            let layer_cache = cache.as_deref_mut().map(|c| c.layer(i));
            let last_only = last_only && i == last;
            x = block.forward(&x, rotary.as_ref(), &pad_bias, layer_cache, ctx, last_only)?;
        }
        self.final_norm.forward(&x)
    }

    /// Next-token logits (rows, vocab) of one new token per sequence, each sequence with its own
    /// cache (continuous batching: sequences of different lengths decode together without
    /// padding). `tokens[i]` at position `positions[i]` extends `caches[i]`, which receives it.
    /// The projections and the feed-forward layers run on all rows at once.
    pub fn decode_rows(
        &self,
        tokens: &[u32],
        positions: &[u32],
        caches: &mut [KvCache],
    ) -> Result<Tensor> {
        let rows = tokens.len();
        if positions.len() != rows || caches.len() != rows {
            return Err(Error::config(
                "decode_rows",
                format!(
                    "{rows} tokens, {} positions and {} caches (one each per row)",
                    positions.len(),
                    caches.len()
                ),
            ));
        }
        let _no_grad = candle_core::no_grad();
        let mut ctx = ForwardCtx::eval();
        let (mut x, tables) = self.embed_tokens(tokens.to_vec(), positions, (rows, 1), &mut ctx)?;
        let rotary = tables.as_ref().map(|(cos, sin)| Rotary {
            cos,
            sin,
            style: self.config.rope_style,
        });
        for (i, block) in self.blocks.iter().enumerate() {
            let mut layers: Vec<&mut LayerCache> = caches.iter_mut().map(|c| c.layer(i)).collect();
            x = block.forward_rows(&x, rotary.as_ref(), &mut layers)?;
        }
        let logits = self.lm_head.forward(&self.final_norm.forward(&x)?)?;
        Ok(logits.reshape((rows, self.config.vocab_size))?)
    }

    /// Whether one sequence's one-token decode steps take the fused step (`fused_decode.rs`):
    /// a Llama whose products are all GGUF Q4_0, Q4_1, Q8_0 or F16 matrices, in CPU memory.
    pub fn has_fused_decode_step(&self) -> bool {
        self.embed.device().is_cpu() && self.fused_plan().is_some()
    }

    fn fused_plan(&self) -> Option<&FusedDecoder> {
        self.fused
            .get_or_init(|| {
                FusedDecoder::plan(&self.config, &self.blocks, &self.final_norm, &self.lm_head)
            })
            .as_ref()
    }

    /// Next-token logits (1, 1, vocab) of one token of one unpadded sequence through the fused
    /// decode step (`fused_decode.rs`), or `None` when the step or the model does not fit it.
    fn fused_next_token(
        &self,
        ids: &[Vec<u32>],
        positions: &[Vec<u32>],
        attention_mask: &[Vec<u32>],
        cache: &mut KvCache,
    ) -> Result<Option<Tensor>> {
        let (Some(token), Some(position)) = (single(ids), single(positions)) else {
            return Ok(None);
        };
        if attention_mask.len() != 1 || attention_mask[0].iter().any(|&m| m != 1) {
            return Ok(None);
        }
        if !self.embed.device().is_cpu() || (token as usize) >= self.config.vocab_size {
            return Ok(None);
        }
        if position as usize >= self.config.max_positions {
            return Ok(None);
        }
        let Some(plan) = self.fused_plan() else {
            return Ok(None);
        };
        let x = self.embed.row(token)?;
        let threads = rayon::current_num_threads();
        Ok(Some(plan.logits(
            x,
            position,
            cache,
            &self.lm_head,
            threads,
        )?))
    }

    /// The input of the first block for `flat` token ids at `flat_positions` (a `shape` of
    /// (batch, seq)): token embeddings plus learned positions (GPT-2), dropout while training,
    /// and the rotary tables (Llama). Ids and positions outside the model are errors.
    fn embed_tokens(
        &self,
        flat: Vec<u32>,
        flat_positions: &[u32],
        (batch, seq): (usize, usize),
        ctx: &mut ForwardCtx,
    ) -> Result<(Tensor, Option<(Tensor, Tensor)>)> {
        let device = self.device().clone();
        if let Some(&p) = flat_positions.iter().max() {
            if p as usize >= self.config.max_positions {
                return Err(Error::config(
                    "max_length",
                    format!(
                        "position {p} is beyond the model's context of {} tokens",
                        self.config.max_positions
                    ),
                ));
            }
        }
        if let Some(&bad) = flat.iter().find(|&&t| t as usize >= self.config.vocab_size) {
            return Err(Error::config(
                "input_ids",
                format!(
                    "token id {bad} is outside the vocabulary of {} tokens",
                    self.config.vocab_size
                ),
            ));
        }
        let mut x = self.embed.lookup(flat)?;
        if let Some(table) = &self.positions {
            let index = Tensor::from_vec(flat_positions.to_vec(), batch * seq, &device)?;
            x = (x + table.index_select(&index, 0)?)?;
        }
        let x = x.reshape((batch, seq, self.config.hidden_size))?;
        let x = dropout(&x, self.config.dropout, ctx)?;
        let tables = match self.config.family {
            DecoderFamily::Llama => {
                let (cos, sin) = rope_tables(
                    flat_positions,
                    self.config.head_dim,
                    self.config.rope_theta,
                    &device,
                )?;
                let half = self.config.head_dim / 2;
                Some((
                    cos.reshape((batch, seq, half))?,
                    sin.reshape((batch, seq, half))?,
                ))
            }
            DecoderFamily::Gpt2 => None,
        };
        Ok((x, tables))
    }

    /// Mean next-token cross-entropy of equal-length rows `ids` (batch, seq) whose real tokens
    /// are marked in `attention_mask`: position `t` predicts token `t + 1` (labels are shifted
    /// inside, as transformers' `ForCausalLMLoss`), padding is ignored. Returns the loss and the
    /// number of predicted tokens.
    pub fn causal_lm_loss(
        &self,
        ids: &[Vec<u32>],
        attention_mask: &[Vec<u32>],
        ctx: &mut ForwardCtx,
    ) -> Result<(Tensor, usize)> {
        let positions = position_ids(attention_mask);
        let logits = self.forward(ids, &positions, attention_mask, None, ctx, false)?;
        shifted_cross_entropy(&logits, ids, attention_mask)
    }

    /// The token ids of `text` as a prompt: with `chat`, wrapped in the model's chat template as
    /// one user turn (ready for the assistant's answer); otherwise encoded as it is, with the
    /// tokenizer's own special tokens.
    pub fn encode_prompt(&self, text: &str, chat: bool) -> Result<Vec<u32>> {
        if chat {
            return self.encode_chat(&[super::chat::ChatMessage::user(text)]);
        }
        self.tokenizer()?.encode(text, true)
    }

    /// The token ids of a conversation rendered with the model's chat template, ending where the
    /// assistant's next answer begins (transformers' `apply_chat_template(...,
    /// add_generation_prompt=True)`).
    pub fn encode_chat(&self, messages: &[super::chat::ChatMessage]) -> Result<Vec<u32>> {
        let tokenizer = self.tokenizer()?;
        let template = self.chat_template.as_deref().ok_or_else(|| {
            Error::config(
                "chat",
                format!("{} has no chat template", self.source.display()),
            )
        })?;
        let token = |id: Option<u32>| {
            id.and_then(|i| tokenizer.id_to_token(i))
                .unwrap_or_default()
        };
        let rendered = super::chat::apply_chat_template(
            template,
            messages,
            true,
            &token(self.generation.bos_token_id),
            &token(self.generation.eos_token_ids.first().copied()),
        )?;
        tokenizer.encode(&rendered, false)
    }

    /// A new empty key/value cache for this model.
    pub fn new_cache(&self) -> KvCache {
        Generator::new_cache(self)
    }
}

/// Mean cross-entropy of `logits` (batch, seq, vocab) at positions `0..seq-1` against the tokens
/// at `1..seq`, where both positions are real tokens; with the count of such targets.
pub fn shifted_cross_entropy(
    logits: &Tensor,
    ids: &[Vec<u32>],
    attention_mask: &[Vec<u32>],
) -> Result<(Tensor, usize)> {
    let (batch, seq, vocab) = logits.dims3()?;
    let mut targets = vec![None; batch * seq];
    for b in 0..batch {
        for t in 0..seq.saturating_sub(1) {
            if attention_mask[b][t] == 1 && attention_mask[b][t + 1] == 1 {
                targets[b * seq + t] = Some(ids[b][t + 1]);
            }
        }
    }
    let count = targets.iter().filter(|t| t.is_some()).count();
    if count == 0 {
        return Err(Error::config(
            "input_ids",
            "no token to predict (every sequence is shorter than 2 tokens)",
        ));
    }
    let flat = logits.reshape((batch * seq, vocab))?;
    Ok((softmax_cross_entropy(&flat, &targets)?, count))
}

impl Generator for DecoderModel {
    type Cache = KvCache;

    fn new_cache(&self) -> KvCache {
        KvCache::new(self.blocks.len())
    }

    fn next_token_logits(
        &self,
        ids: &[Vec<u32>],
        positions: &[Vec<u32>],
        attention_mask: &[Vec<u32>],
        cache: &mut KvCache,
    ) -> Result<Tensor> {
        if let Some(logits) = self.fused_next_token(ids, positions, attention_mask, cache)? {
            return Ok(logits);
        }
        // Generation: no backward pass follows, so the prompt takes the fused attention.
        let mut ctx = ForwardCtx::inference();
        self.forward(ids, positions, attention_mask, Some(cache), &mut ctx, true)
    }

    fn context_size(&self) -> usize {
        self.config.max_positions
    }

    fn tokenizer(&self) -> Result<&SubwordTokenizer> {
        DecoderModel::tokenizer(self)
    }
}

impl GenerationCache for KvCache {
    fn select_rows(&mut self, rows: &[u32]) -> Result<()> {
        KvCache::select_rows(self, rows)
    }
}

/// The one value of a batch of one row of one position.
fn single(rows: &[Vec<u32>]) -> Option<u32> {
    match rows {
        [row] if row.len() == 1 => Some(row[0]),
        _ => None,
    }
}
