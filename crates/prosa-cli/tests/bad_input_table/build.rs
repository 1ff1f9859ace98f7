//! Hostile binary files for the bad-input table: GGUF headers and safetensors files whose
//! counts, lengths and offsets promise more than the file holds.

/// Little-endian GGUF writer (format version 3).
struct Gguf(Vec<u8>);

const STRING: u32 = 8;
const UINT32: u32 = 4;
const ARRAY: u32 = 9;
/// Metadata entries [`Gguf::llama`] writes.
const LLAMA_KVS: u64 = 10;

impl Gguf {
    fn new(version: u32, tensors: u64, kvs: u64) -> Self {
        let mut b = b"GGUF".to_vec();
        b.extend(version.to_le_bytes());
        b.extend(tensors.to_le_bytes());
        b.extend(kvs.to_le_bytes());
        Gguf(b)
    }
    fn string(mut self, s: &str) -> Self {
        self.0.extend((s.len() as u64).to_le_bytes());
        self.0.extend(s.as_bytes());
        self
    }
    fn u32(mut self, v: u32) -> Self {
        self.0.extend(v.to_le_bytes());
        self
    }
    fn u64(mut self, v: u64) -> Self {
        self.0.extend(v.to_le_bytes());
        self
    }
    fn kv_str(self, key: &str, value: &str) -> Self {
        self.string(key).u32(STRING).string(value)
    }
    fn kv_u32(self, key: &str, value: u32) -> Self {
        self.string(key).u32(UINT32).u32(value)
    }
    fn strings(mut self, key: &str, values: &[String]) -> Self {
        self = self
            .string(key)
            .u32(ARRAY)
            .u32(STRING)
            .u64(values.len() as u64);
        for v in values {
            self = self.string(v);
        }
        self
    }
    /// The metadata of a tiny Llama (2 layers, width 32, 4 heads, a byte-level BPE tokenizer of
    /// 96 tokens) with `overrides`: [`LLAMA_KVS`] entries.
    fn llama(self, overrides: &[(&str, u32)]) -> Self {
        let mut g = self.kv_str("general.architecture", "llama");
        for (key, default) in [
            ("llama.block_count", 2),
            ("llama.embedding_length", 32),
            ("llama.feed_forward_length", 64),
            ("llama.attention.head_count", 4),
            ("llama.attention.head_count_kv", 4),
            ("llama.context_length", 64),
        ] {
            let value = overrides
                .iter()
                .find(|(k, _)| *k == key)
                .map_or(default, |(_, v)| *v);
            g = g.kv_u32(key, value);
        }
        let tokens: Vec<String> = (0..96u8)
            .map(|i| ((b'!' + i) as char).to_string())
            .collect();
        g.kv_str("tokenizer.ggml.model", "gpt2")
            .strings("tokenizer.ggml.tokens", &tokens)
            .strings("tokenizer.ggml.merges", &[])
    }
    fn bytes(self) -> Vec<u8> {
        self.0
    }
}

/// Not GGUF at all.
pub fn gguf_bad_magic() -> Vec<u8> {
    b"GGML\x03\x00\x00\x00 and then nothing of use".to_vec()
}
/// The magic and nothing else.
pub fn gguf_truncated() -> Vec<u8> {
    b"GGUF\x03\x00".to_vec()
}
/// A format version from the future.
pub fn gguf_version_99() -> Vec<u8> {
    Gguf::new(99, 0, 0).bytes()
}
/// 2^60 tensors promised by a 24-byte file.
pub fn gguf_huge_tensor_count() -> Vec<u8> {
    Gguf::new(3, 1 << 60, 0).bytes()
}
/// 2^60 metadata entries promised by a 24-byte file.
pub fn gguf_huge_metadata_count() -> Vec<u8> {
    Gguf::new(3, 0, 1 << 60).bytes()
}
/// A key whose length is 2^40 bytes.
pub fn gguf_huge_string() -> Vec<u8> {
    Gguf::new(3, 0, 1).u64(1 << 40).bytes()
}
/// A metadata value of type 99.
pub fn gguf_unknown_value_type() -> Vec<u8> {
    Gguf::new(3, 0, 1).string("general.name").u32(99).bytes()
}
/// An array of 2^50 numbers in a few bytes.
pub fn gguf_huge_array() -> Vec<u8> {
    Gguf::new(3, 0, 1)
        .string("tokenizer.ggml.scores")
        .u32(ARRAY)
        .u32(UINT32)
        .u64(1 << 50)
        .bytes()
}
/// Metadata without `general.architecture`.
pub fn gguf_no_architecture() -> Vec<u8> {
    Gguf::new(3, 0, 1).kv_str("general.name", "tiny").bytes()
}
/// An architecture prosa does not run.
pub fn gguf_unknown_architecture() -> Vec<u8> {
    Gguf::new(3, 0, 1)
        .kv_str("general.architecture", "mamba")
        .bytes()
}
/// A Llama with no attention heads.
pub fn gguf_zero_heads() -> Vec<u8> {
    Gguf::new(3, 0, LLAMA_KVS)
        .llama(&[("llama.attention.head_count", 0)])
        .bytes()
}
/// A Llama whose width is not a multiple of its heads.
pub fn gguf_heads_do_not_divide() -> Vec<u8> {
    Gguf::new(3, 0, LLAMA_KVS)
        .llama(&[("llama.attention.head_count", 5)])
        .bytes()
}
/// A Llama of four billion layers.
pub fn gguf_huge_block_count() -> Vec<u8> {
    Gguf::new(3, 0, LLAMA_KVS)
        .llama(&[("llama.block_count", 4_000_000_000)])
        .bytes()
}
/// A tensor whose data lies past the end of the file.
pub fn gguf_tensor_past_end() -> Vec<u8> {
    let mut g = Gguf::new(3, 1, LLAMA_KVS).llama(&[]);
    g = g.string("token_embd.weight").u32(2).u64(32).u64(96);
    g = g.u32(0).u64(0); // f32, offset 0
    let mut bytes = g.bytes();
    while !bytes.len().is_multiple_of(32) {
        bytes.push(0);
    }
    bytes.extend([0u8; 64]); // far fewer than 96 × 32 × 4 bytes
    bytes
}
/// A tensor of 2^40 × 2^40 values.
pub fn gguf_huge_tensor() -> Vec<u8> {
    let g = Gguf::new(3, 1, LLAMA_KVS).llama(&[]);
    g.string("token_embd.weight")
        .u32(2)
        .u64(1 << 40)
        .u64(1 << 40)
        .u32(0)
        .u64(0)
        .bytes()
}

/// A safetensors file: the 8-byte header length, then `header`, then `data` bytes.
fn safetensors(header: &str, data: usize) -> Vec<u8> {
    let mut b = (header.len() as u64).to_le_bytes().to_vec();
    b.extend(header.as_bytes());
    b.extend(std::iter::repeat_n(0u8, data));
    b
}
/// A header length of 2^50 bytes.
pub fn safetensors_huge_header() -> Vec<u8> {
    let mut b = (1u64 << 50).to_le_bytes().to_vec();
    b.extend(b"{}");
    b
}
/// A header that is not JSON.
pub fn safetensors_header_not_json() -> Vec<u8> {
    safetensors("hello, world", 0)
}
/// A tensor whose bytes lie past the end of the file.
pub fn safetensors_offsets_past_end() -> Vec<u8> {
    safetensors(
        r#"{"bert.embeddings.word_embeddings.weight":{"dtype":"F32","shape":[96,32],"data_offsets":[0,12288]}}"#,
        16,
    )
}
/// A tensor whose byte range does not match its shape.
pub fn safetensors_shape_disagrees_with_bytes() -> Vec<u8> {
    safetensors(
        r#"{"bert.embeddings.word_embeddings.weight":{"dtype":"F32","shape":[96,32],"data_offsets":[0,16]}}"#,
        16,
    )
}
/// A dtype safetensors does not know.
pub fn safetensors_unknown_dtype() -> Vec<u8> {
    safetensors(
        r#"{"bert.embeddings.word_embeddings.weight":{"dtype":"F99","shape":[2],"data_offsets":[0,8]}}"#,
        8,
    )
}
