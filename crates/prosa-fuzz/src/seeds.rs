//! The generated seeds (`prosa-fuzz make-seeds`): a tiny but complete Llama GGUF (Q4_1
//! projections, byte-level BPE tokenizer, chat template) and a 4 × 3 `.npy` matrix. The other
//! seeds are small files copied from the test fixtures (see `fuzz/README.md`).

use std::path::Path;

use candle_core::quantized::gguf_file::{self, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::Tensor;

/// Writes the generated seeds under `root/fuzz/seeds/`.
pub fn make(root: &Path) -> anyhow::Result<()> {
    let seeds = root.join("fuzz/seeds");
    std::fs::create_dir_all(seeds.join("gguf"))?;
    std::fs::create_dir_all(seeds.join("npy"))?;
    std::fs::write(seeds.join("npy/four-by-three.npy"), npy_4x3())?;
    let mut file = std::fs::File::create(seeds.join("gguf/tiny-llama.gguf"))?;
    tiny_llama(&mut file)?;
    println!("wrote {}", seeds.display());
    Ok(())
}

/// A little-endian float32 `(4, 3)` matrix in `.npy` format 1.0.
fn npy_4x3() -> Vec<u8> {
    let mut header = "{'descr': '<f4', 'fortran_order': False, 'shape': (4, 3), }".to_string();
    while !(10 + header.len() + 1).is_multiple_of(64) {
        header.push(' ');
    }
    header.push('\n');
    let mut b = b"\x93NUMPY\x01\x00".to_vec();
    b.extend((header.len() as u16).to_le_bytes());
    b.extend(header.as_bytes());
    for i in 0..12 {
        b.extend(((i as f32 * 0.37).sin()).to_le_bytes());
    }
    b
}

/// Deterministic values in [-0.5, 0.5) for a tensor of `shape`.
fn values(shape: &[usize], salt: usize) -> anyhow::Result<Tensor> {
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n)
        .map(|i| (((i * 7919 + salt * 104_729) % 1000) as f32 / 1000.0) - 0.5)
        .collect();
    Ok(Tensor::from_vec(
        v,
        shape,
        &prosa::device::default_device(),
    )?)
}

/// A 2-layer Llama (width 32, 4 heads, 2 key/value heads, MLP 64, 96 tokens).
fn tiny_llama(w: &mut std::fs::File) -> anyhow::Result<()> {
    let (hidden, kv, ffn, vocab) = (32usize, 16usize, 64usize, 96usize);
    let mut tokens: Vec<String> = vec!["<s>".into(), "</s>".into(), "Ġ".into()];
    tokens.extend(('a'..='z').map(String::from));
    tokens.extend(('A'..='Z').map(String::from));
    tokens.extend(('0'..='9').map(String::from));
    tokens.extend(["he", "Ġh", "ll", "Ġa", "Ġt", "te", "xt"].map(String::from));
    for c in "!\"#$%&'()*+,-./:;<=>?@[]^_`{|}~".chars() {
        if tokens.len() < vocab {
            tokens.push(c.to_string());
        }
    }
    anyhow::ensure!(tokens.len() == vocab, "{} tokens", tokens.len());
    let merges = ["h e", "Ġ h", "l l", "Ġ a", "Ġ t", "t e", "x t"];
    let strings = |v: &[String]| Value::Array(v.iter().map(|s| Value::String(s.clone())).collect());
    let meta: Vec<(&str, Value)> = vec![
        ("general.architecture", Value::String("llama".into())),
        ("general.name", Value::String("tiny".into())),
        ("llama.block_count", Value::U32(2)),
        ("llama.embedding_length", Value::U32(hidden as u32)),
        ("llama.feed_forward_length", Value::U32(ffn as u32)),
        ("llama.attention.head_count", Value::U32(4)),
        ("llama.attention.head_count_kv", Value::U32(2)),
        ("llama.context_length", Value::U32(64)),
        ("llama.rope.freq_base", Value::F32(10_000.0)),
        ("llama.attention.layer_norm_rms_epsilon", Value::F32(1e-5)),
        ("tokenizer.ggml.model", Value::String("gpt2".into())),
        ("tokenizer.ggml.tokens", strings(&tokens)),
        ("tokenizer.ggml.merges", strings(&merges.map(String::from))),
        ("tokenizer.ggml.bos_token_id", Value::U32(0)),
        ("tokenizer.ggml.eos_token_id", Value::U32(1)),
        (
            "tokenizer.chat_template",
            Value::String(
                "{% for m in messages %}<|{{ m.role }}|>{{ m.content }}{% endfor %}\
                 {% if add_generation_prompt %}<|assistant|>{% endif %}"
                    .into(),
            ),
        ),
    ];
    let mut tensors: Vec<(String, QTensor)> = Vec::new();
    let mut salt = 0;
    let mut add = |name: String, shape: &[usize], dtype: GgmlDType| -> anyhow::Result<()> {
        salt += 1;
        tensors.push((name, QTensor::quantize(&values(shape, salt)?, dtype)?));
        Ok(())
    };
    add("token_embd.weight".into(), &[vocab, hidden], GgmlDType::F32)?;
    for l in 0..2 {
        let p = |n: &str| format!("blk.{l}.{n}.weight");
        add(p("attn_norm"), &[hidden], GgmlDType::F32)?;
        add(p("attn_q"), &[hidden, hidden], GgmlDType::Q4_1)?;
        add(p("attn_k"), &[kv, hidden], GgmlDType::Q4_1)?;
        add(p("attn_v"), &[kv, hidden], GgmlDType::Q4_1)?;
        add(p("attn_output"), &[hidden, hidden], GgmlDType::Q4_1)?;
        add(p("ffn_norm"), &[hidden], GgmlDType::F32)?;
        add(p("ffn_gate"), &[ffn, hidden], GgmlDType::Q4_1)?;
        add(p("ffn_up"), &[ffn, hidden], GgmlDType::Q4_1)?;
        add(p("ffn_down"), &[hidden, ffn], GgmlDType::Q4_1)?;
    }
    add("output_norm.weight".into(), &[hidden], GgmlDType::F32)?;
    let meta_refs: Vec<(&str, &Value)> = meta.iter().map(|(k, v)| (*k, v)).collect();
    let tensor_refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, t)| (k.as_str(), t)).collect();
    gguf_file::write(w, &meta_refs, &tensor_refs)?;
    Ok(())
}
