//! Ops and layers shared by the models, on candle. Nothing here knows the training loop: the
//! forward context, the parameter store and initialisation live here, and `train` builds on them.
//!
//! - ops with a backward pass: [`norm`] (layer and RMS norms), [`softmax`] (plain, masked,
//!   causal), [`activation`] (GELUs, fast tanh/sigmoid), [`dropout`], [`rope`], [`loss`],
//!   [`linear`] (both weight layouts), [`quantized`] (GGUF block products);
//! - layers: [`projection`] (dense, `Conv1D` or quantized weights; few-row inference products
//!   through a packed copy, [`dense_panels`]), [`norm::Norm`],
//!   [`attention`] (bidirectional, causal and cross multi-head attention) with its
//!   [`kv_cache`], its one-pass inference kernel (`fused_attention`; over sequences packed
//!   without padding, `packed_attention`) and its decode-step
//!   kernel (`decode_attention`), the decode step's spinning thread team (`decode_team`) and
//!   the inference passes' spinning helpers (`spin_pool`), [`additive_attention`] (Bahdanau,
//!   Luong), [`recurrent`] (RNN, LSTM, GRU and their fused time loop) and [`gru_cell`] (one
//!   step), [`positional`] (sinusoidal);
//! - plumbing: [`ForwardCtx`], [`params`] (named, seeded parameters saved as safetensors),
//!   [`weights_file`] (checkpoints read one tensor at a time), [`side_by_side`] (independent
//!   batches run one per thread).

pub mod activation;
pub mod additive_attention;
pub mod attention;
mod attention_rows;
pub mod batch_norm;
mod cell;
mod context;
pub(crate) mod decode_attention;
pub(crate) mod decode_team;
pub mod dense_panels;
mod dense_pass;
mod dense_rows;
mod dense_writes;
pub mod dropout;
pub mod elementwise;
pub mod embedding;
mod fused_attention;
mod fused_recurrent;
pub(crate) mod gemm;
pub mod gru_cell;
mod half_groups;
mod head_split;
pub(crate) mod huge_pages;
pub mod kv_cache;
pub(crate) mod lanes;
pub mod linear;
pub mod loss;
pub mod max_pool;
pub mod norm;
mod packed_attention;
mod panel_tasks;
pub mod params;
pub mod positional;
pub mod projection;
pub mod quantized;
pub mod recurrent;
pub mod rope;
pub mod scalar_mix;
mod scratch;
pub mod side_by_side;
pub mod softmax;
pub(crate) mod spin_pool;
mod transpose;
mod uninit;
pub mod weights_file;

pub use context::{AttentionKind, AttentionMap, ForwardCtx};
pub use dropout::dropout;
pub use params::{load_safetensors, Init, ParamBuilder, ParamStore};
