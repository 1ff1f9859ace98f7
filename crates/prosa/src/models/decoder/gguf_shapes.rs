//! The shapes a GGUF file's tensors must have for the config its metadata describes, checked
//! before any tensor is read: a tensor of another shape, or a quantized row the kernels cannot
//! take, would otherwise fail an assertion deep in a matrix product (found by `prosa-fuzz`).

use std::path::Path;

use candle_core::quantized::gguf_file::Content;
use candle_core::quantized::GgmlDType;

use super::config::DecoderConfig;
use crate::error::{Error, Result};

/// Checks every tensor the model reads against `config` (absent tensors are left to the
/// reader, which names them).
pub(super) fn check_shapes(content: &Content, config: &DecoderConfig, path: &Path) -> Result<()> {
    let (hidden, ffn) = (config.hidden_size, config.intermediate_size);
    let (q, kv) = (
        config.num_heads * config.head_dim,
        config.num_kv_heads * config.head_dim,
    );
    let mut expected: Vec<(String, Vec<Option<usize>>)> = vec![
        ("token_embd.weight".into(), vec![None, Some(hidden)]),
        ("output.weight".into(), vec![None, Some(hidden)]),
        ("output_norm.weight".into(), vec![Some(hidden)]),
    ];
    for l in 0..config.num_layers {
        let p = |n: &str| format!("blk.{l}.{n}.weight");
        expected.extend([
            (p("attn_norm"), vec![Some(hidden)]),
            (p("ffn_norm"), vec![Some(hidden)]),
            (p("attn_q"), vec![Some(q), Some(hidden)]),
            (p("attn_k"), vec![Some(kv), Some(hidden)]),
            (p("attn_v"), vec![Some(kv), Some(hidden)]),
            (p("attn_output"), vec![Some(hidden), Some(q)]),
            (p("ffn_gate"), vec![Some(ffn), Some(hidden)]),
            (p("ffn_up"), vec![Some(ffn), Some(hidden)]),
            (p("ffn_down"), vec![Some(hidden), Some(ffn)]),
        ]);
    }
    for (name, want) in expected {
        let Some(info) = content.tensor_infos.get(&name) else {
            continue;
        };
        let dims = info.shape.dims();
        let fits = dims.len() == want.len()
            && dims
                .iter()
                .zip(&want)
                .all(|(d, w)| w.is_none_or(|w| *d == w));
        let bad = |message: String| Error::Tensor {
            path: path.to_path_buf(),
            name: name.clone(),
            message,
        };
        if !fits {
            let want: Vec<String> = want
                .iter()
                .map(|w| w.map_or("any".into(), |w| w.to_string()))
                .collect();
            return Err(bad(format!(
                "shape {dims:?}, but the metadata's sizes need [{}]",
                want.join(", ")
            )));
        }
        if let Some(&cols) = dims.get(1) {
            if !row_fits(info.ggml_dtype, cols) {
                return Err(bad(format!(
                    "rows of {cols} {:?} values do not fill the whole, even number of blocks \
                     the kernels need",
                    info.ggml_dtype
                )));
            }
        }
    }
    Ok(())
}

/// Whether a row of `cols` values of `dtype` is whole blocks — an even number of them for the
/// types whose products (candle's) pair blocks; prosa's own Q4_0/Q4_1/Q8_0 kernels take any
/// number.
fn row_fits(dtype: GgmlDType, cols: usize) -> bool {
    let block = dtype.block_size();
    let paired = matches!(dtype, GgmlDType::Q5_0 | GgmlDType::Q5_1);
    cols.is_multiple_of(block) && (!paired || (cols / block).is_multiple_of(2))
}
