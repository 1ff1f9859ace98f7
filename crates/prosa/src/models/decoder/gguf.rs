//! Llama-family models from GGUF files (llama.cpp's format): hyperparameters from the metadata,
//! the byte-level BPE tokenizer stored inside it, and the weights kept quantized (F32, F16,
//! BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 and the K-quants) and multiplied in that form: Q4_0, Q4_1
//! and Q8_0 by prosa's integer kernels (`nn::quantized`), the other types by candle's. Only the
//! token-embedding table is expanded to f32, for lookups.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use candle_core::quantized::gguf_file::{Content, Value};
use candle_core::quantized::QMatMul;
use candle_core::{Device, Tensor};
use tokenizers::models::bpe::{Vocab, BPE};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::{AddedToken, Tokenizer};

use super::block::{Block, Mlp};
use super::config::{DecoderConfig, DecoderFamily};
use super::parts::Parts;
use super::token_table::TokenTable;
use crate::error::{Error, Result};
use crate::nn::attention::{MultiHeadAttention, Qkv};
use crate::nn::norm::Norm;
use crate::nn::projection::{Projection, Weight};
use crate::nn::quantized::QuantMatrix;
use crate::nn::rope::RopeStyle;
use crate::text::SubwordTokenizer;

/// GGUF token types (llama.cpp's `llama_token_type`).
const CONTROL_TOKEN: i32 = 3;
const USER_DEFINED_TOKEN: i32 = 4;

/// An open GGUF file: its parsed header and a reader for the tensors.
struct GgufFile<'a> {
    path: &'a Path,
    content: Content,
    file: File,
    device: &'a Device,
}

impl GgufFile<'_> {
    fn err(&self, message: impl Into<String>) -> Error {
        Error::folder(self.path, message)
    }

    fn meta(&self, key: &str) -> Option<&Value> {
        self.content.metadata.get(key)
    }

    fn meta_u32(&self, key: &str) -> Result<u32> {
        self.meta(key)
            .ok_or_else(|| self.err(format!("metadata \"{key}\" is missing")))?
            .to_u32()
            .map_err(|e| self.err(format!("metadata \"{key}\": {e}")))
    }

    fn meta_f32(&self, key: &str) -> Option<f32> {
        self.meta(key).and_then(|v| v.to_f32().ok())
    }

    fn strings(&self, key: &str) -> Result<Vec<String>> {
        let values = self
            .meta(key)
            .ok_or_else(|| self.err(format!("metadata \"{key}\" is missing")))?
            .to_vec()
            .map_err(|e| self.err(format!("metadata \"{key}\": {e}")))?;
        values
            .iter()
            .map(|v| {
                v.to_string()
                    .cloned()
                    .map_err(|e| self.err(format!("metadata \"{key}\": {e}")))
            })
            .collect()
    }

    /// Projections that read the same input, stacked into one when their types allow.
    fn stacked(&mut self, names: &[String]) -> Result<Option<Projection>> {
        let mut parts = Vec::with_capacity(names.len());
        for name in names {
            match self.qmatmul(name)?.weight {
                Weight::Blocks(b) => parts.push(b),
                _ => return Ok(None),
            }
        }
        let refs: Vec<&QuantMatrix> = parts.iter().map(|p| p.as_ref()).collect();
        Ok(QuantMatrix::stack(&refs).map(|m| Projection::new(Weight::Blocks(Arc::new(m)), None)))
    }

    fn qmatmul(&mut self, name: &str) -> Result<Projection> {
        let q = self.read(name)?;
        let weight = match QuantMatrix::from_qtensor(&q)? {
            Some(blocks) => Weight::Blocks(Arc::new(blocks)),
            None => Weight::Quantized(Arc::new(QMatMul::from_qtensor(q)?)),
        };
        Ok(Projection::new(weight, None))
    }

    fn read(&mut self, name: &str) -> Result<candle_core::quantized::QTensor> {
        if !self.content.tensor_infos.contains_key(name) {
            return Err(Error::Tensor {
                path: self.path.to_path_buf(),
                name: name.to_string(),
                message: "missing from the GGUF file".into(),
            });
        }
        self.content
            .tensor(&mut self.file, name, self.device)
            .map_err(|e| Error::Tensor {
                path: self.path.to_path_buf(),
                name: name.to_string(),
                message: e.to_string(),
            })
    }

    fn dense(&mut self, name: &str) -> Result<Tensor> {
        Ok(self.read(name)?.dequantize(self.device)?)
    }

    /// The token embeddings: on the CPU the quantized matrix itself, its rows expanded as they
    /// are looked up; else (or for a type prosa does not repack) f32.
    fn token_table(&mut self) -> Result<TokenTable> {
        let q = self.read("token_embd.weight")?;
        if self.device.is_cpu() {
            if let Some(m) = QuantMatrix::from_qtensor(&q)? {
                return Ok(TokenTable::Quantized {
                    rows: Arc::new(m),
                    device: self.device.clone(),
                });
            }
        }
        Ok(TokenTable::Dense(q.dequantize(self.device)?))
    }
}

/// What a GGUF file holds: the config its metadata describes, the model's parts (quantized
/// projections), the tokenizer and the chat template.
pub(crate) struct GgufContents {
    pub config: DecoderConfig,
    pub parts: Parts,
    pub tokenizer: SubwordTokenizer,
    pub chat_template: Option<String>,
}

/// Reads a Llama-architecture GGUF file (`DecoderModel::from_pretrained` assembles it).
pub(crate) fn read(path: &Path, device: &Device) -> Result<GgufContents> {
    let mut file = File::open(path).map_err(|e| Error::io(path, e))?;
    let content = Content::read(&mut file).map_err(|e| {
        let message = e.to_string();
        let message = match message.strip_prefix("unknown dtype for tensor ") {
            Some(code) => format!(
                "a tensor has GGUF type {code}, which prosa cannot read (it reads F32, F16, BF16, \
                 Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1 and Q2_K–Q8_K)"
            ),
            None => format!("not a readable GGUF file: {message}"),
        };
        Error::folder(path, message)
    })?;
    check_tensor_bounds(&content, path, &file)?;
    let mut g = GgufFile {
        path,
        content,
        file,
        device,
    };
    let arch = g
        .meta("general.architecture")
        .and_then(|v| v.to_string().ok())
        .cloned()
        .ok_or_else(|| g.err("metadata \"general.architecture\" is missing"))?;
    if arch != "llama" {
        return Err(g.err(format!(
            "architecture \"{arch}\" is not supported in GGUF files (llama)"
        )));
    }
    let hidden = g.meta_u32("llama.embedding_length")? as usize;
    let heads = g.meta_u32("llama.attention.head_count")? as usize;
    let kv_heads = g
        .meta_u32("llama.attention.head_count_kv")
        .map_or(heads, |v| v as usize);
    let head_dim = match g.meta_u32("llama.rope.dimension_count") {
        Ok(d) => d as usize,
        Err(_) if heads > 0 && hidden.is_multiple_of(heads) => hidden / heads,
        Err(_) => {
            return Err(g.err(format!(
                "llama.embedding_length {hidden} is not a multiple of \
                 llama.attention.head_count {heads}"
            )))
        }
    };
    let layers = g.meta_u32("llama.block_count")? as usize;
    let eps = g
        .meta_f32("llama.attention.layer_norm_rms_epsilon")
        .unwrap_or(1e-5) as f64;
    let token = |key: &str| g.meta_u32(key).ok();
    let mut config = DecoderConfig {
        family: DecoderFamily::Llama,
        vocab_size: 1, // the tokenizer's, once the sizes are known to be sane
        hidden_size: hidden,
        num_layers: layers,
        num_heads: heads,
        num_kv_heads: kv_heads,
        head_dim,
        intermediate_size: g.meta_u32("llama.feed_forward_length")? as usize,
        max_positions: g
            .meta_u32("llama.context_length")
            .map_or(2048, |v| v as usize),
        norm_eps: eps,
        rope_theta: g.meta_f32("llama.rope.freq_base").unwrap_or(10_000.0) as f64,
        rope_style: RopeStyle::Interleaved,
        tie_word_embeddings: !g.content.tensor_infos.contains_key("output.weight"),
        attention_bias: false,
        dropout: 0.0,
        initializer_range: 0.02,
        bos_token_id: token("tokenizer.ggml.bos_token_id"),
        eos_token_ids: token("tokenizer.ggml.eos_token_id").into_iter().collect(),
        pad_token_id: token("tokenizer.ggml.padding_token_id"),
        raw: serde_json::Value::Null,
    };
    // The sizes are checked before anything is allocated for them.
    config
        .validate()
        .map_err(|message| g.err(format!("metadata: {}", with_gguf_keys(&message))))?;
    super::gguf_shapes::check_shapes(&g.content, &config, path)?;
    let tokenizer = gguf_tokenizer(&g)?;
    config.vocab_size = tokenizer.vocab_size();
    config.raw = config.to_json();
    let chat_template = g
        .meta("tokenizer.chat_template")
        .and_then(|v| v.to_string().ok())
        .cloned();

    let embed = g.token_table()?;
    config.vocab_size = embed.rows()?;
    let mut blocks = Vec::with_capacity(layers);
    for i in 0..layers {
        let p = |n: &str| format!("blk.{i}.{n}.weight");
        blocks.push(Block {
            norm1: Norm::Rms {
                weight: g.dense(&p("attn_norm"))?,
                eps,
            },
            attention: MultiHeadAttention {
                qkv: match g.stacked(&[p("attn_q"), p("attn_k"), p("attn_v")])? {
                    Some(fused) => Qkv::Fused(fused),
                    None => Qkv::separate(
                        g.qmatmul(&p("attn_q"))?,
                        g.qmatmul(&p("attn_k"))?,
                        g.qmatmul(&p("attn_v"))?,
                    ),
                },
                out: g.qmatmul(&p("attn_output"))?,
                heads,
                kv_heads,
                head_dim,
                attention_dropout: 0.0,
                output_dropout: 0.0,
                scale: None,
            },
            norm2: Norm::Rms {
                weight: g.dense(&p("ffn_norm"))?,
                eps,
            },
            mlp: match g.stacked(&[p("ffn_gate"), p("ffn_up")])? {
                Some(gate_up) => Mlp::StackedSwiGlu {
                    gate_up,
                    down: g.qmatmul(&p("ffn_down"))?,
                    intermediate: config.intermediate_size,
                },
                None => Mlp::SwiGlu {
                    gate: g.qmatmul(&p("ffn_gate"))?,
                    up: g.qmatmul(&p("ffn_up"))?,
                    down: g.qmatmul(&p("ffn_down"))?,
                },
            },
            dropout: 0.0,
        });
    }
    let final_norm = Norm::Rms {
        weight: g.dense("output_norm.weight")?,
        eps,
    };
    let lm_head = if config.tie_word_embeddings {
        match &embed {
            // The output layer multiplies by the same quantized rows.
            TokenTable::Quantized { rows, .. } => {
                Projection::new(Weight::Blocks(rows.clone()), None)
            }
            TokenTable::Dense(_) => g.qmatmul("token_embd.weight")?,
        }
    } else {
        g.qmatmul("output.weight")?
    };
    let parts = Parts {
        embed,
        positions: None,
        blocks,
        final_norm,
        lm_head,
    };
    config
        .validate()
        .map_err(|message| Error::folder(path, message))?;
    Ok(GgufContents {
        config,
        parts,
        tokenizer,
        chat_template,
    })
}

/// Every tensor the header lists must lie inside the file: its size (from its shape, counted
/// without overflow) past its offset. A header is checked before any tensor is read.
fn check_tensor_bounds(content: &Content, path: &Path, file: &File) -> Result<()> {
    let length = file.metadata().map_err(|e| Error::io(path, e))?.len();
    for (name, info) in &content.tensor_infos {
        let dtype = info.ggml_dtype;
        let bytes = info
            .shape
            .dims()
            .iter()
            .try_fold(1u64, |n, &d| n.checked_mul(d as u64))
            .filter(|&n| n % dtype.block_size() as u64 == 0)
            .and_then(|n| (n / dtype.block_size() as u64).checked_mul(dtype.type_size() as u64));
        let end = bytes.and_then(|b| {
            content
                .tensor_data_offset
                .checked_add(info.offset)?
                .checked_add(b)
        });
        if bytes == Some(0) {
            // candle views an empty buffer as a typed slice through a dangling pointer.
            return Err(Error::Tensor {
                path: path.to_path_buf(),
                name: name.clone(),
                message: format!("shape {:?} holds no values", info.shape.dims()),
            });
        }
        if end.is_none_or(|end| end > length) {
            return Err(Error::Tensor {
                path: path.to_path_buf(),
                name: name.clone(),
                message: format!(
                    "shape {:?} of {dtype:?} at offset {} reaches past the end of the \
                     {length}-byte file (truncated or corrupt?)",
                    info.shape.dims(),
                    info.offset
                ),
            });
        }
    }
    Ok(())
}

/// A config message with transformers' field names replaced by the GGUF keys they came from.
fn with_gguf_keys(message: &str) -> String {
    [
        // Longest first: "num_key_value_heads" before "heads" matches elsewhere.
        ("num_key_value_heads", "llama.attention.head_count_kv"),
        (
            "key/value heads",
            "key/value heads (llama.attention.head_count_kv)",
        ),
        ("num_attention_heads", "llama.attention.head_count"),
        ("num_hidden_layers", "llama.block_count"),
        ("hidden_size", "llama.embedding_length"),
        ("intermediate_size", "llama.feed_forward_length"),
        ("max_position_embeddings", "llama.context_length"),
        ("head_dim", "llama.rope.dimension_count"),
    ]
    .iter()
    .fold(message.to_string(), |m, (hf, gguf)| m.replace(hf, gguf))
}

/// The byte-level BPE tokenizer stored in the metadata (`tokenizer.ggml.model = gpt2`).
fn gguf_tokenizer(g: &GgufFile) -> Result<SubwordTokenizer> {
    let model = g
        .meta("tokenizer.ggml.model")
        .and_then(|v| v.to_string().ok())
        .cloned()
        .unwrap_or_default();
    if model != "gpt2" {
        return Err(g.err(format!(
            "tokenizer.ggml.model \"{model}\" is not supported (gpt2: byte-level BPE)"
        )));
    }
    let tokens = g.strings("tokenizer.ggml.tokens")?;
    let merges: Vec<(String, String)> = g
        .strings("tokenizer.ggml.merges")?
        .into_iter()
        .map(|m| {
            let (a, b) = m.split_once(' ').unwrap_or((m.as_str(), ""));
            (a.to_string(), b.to_string())
        })
        .collect();
    let types: Vec<i32> = match g.meta("tokenizer.ggml.token_type") {
        Some(v) => v
            .to_vec()
            .map_err(|e| g.err(format!("tokenizer.ggml.token_type: {e}")))?
            .iter()
            .map(|t| t.to_i32().unwrap_or(1))
            .collect(),
        None => vec![1; tokens.len()],
    };
    let vocab: Vocab = tokens
        .iter()
        .enumerate()
        .map(|(i, t)| (t.clone(), i as u32))
        .collect();
    let bpe = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .build()
        .map_err(|e| g.err(format!("tokenizer in the metadata: {e}")))?;
    let mut tk = Tokenizer::new(bpe);
    let byte_level = ByteLevel::new(false, true, true);
    let pre = g
        .meta("tokenizer.ggml.pre")
        .and_then(|v| v.to_string().ok())
        .cloned()
        .unwrap_or_default();
    // SmolLM and StarCoder split digits one by one before the byte-level split.
    if matches!(pre.as_str(), "smollm" | "starcoder" | "refact") {
        tk.with_pre_tokenizer(Some(Sequence::new(vec![
            Digits::new(true).into(),
            byte_level.into(),
        ])));
    } else {
        tk.with_pre_tokenizer(Some(byte_level));
    }
    tk.with_decoder(Some(ByteLevel::default()));
    let specials: Vec<AddedToken> = tokens
        .iter()
        .zip(&types)
        .filter(|(_, &t)| t == CONTROL_TOKEN || t == USER_DEFINED_TOKEN)
        .map(|(s, &t)| AddedToken::from(s.clone(), t == CONTROL_TOKEN))
        .collect();
    tk.add_special_tokens(&specials);
    Ok(SubwordTokenizer::from_tokenizer(tk))
}
