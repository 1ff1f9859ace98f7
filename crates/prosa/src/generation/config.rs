//! The settings of `generate()`, named and defaulted as transformers' `GenerationConfig`, read
//! from and written to `generation_config.json`.

use std::path::Path;

use serde_json::{json, Value};

use crate::error::{Error, Result};

/// When beam search stops (transformers' `early_stopping`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EarlyStopping {
    /// Stop when it is unlikely that a better candidate will be found (the default).
    Heuristic,
    /// Stop as soon as `num_beams` finished candidates exist.
    Immediately,
    /// Run until no better candidate can exist (the canonical algorithm).
    Never,
}

/// How `generate()` chooses tokens and when it stops.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerationConfig {
    /// New tokens to generate at most (takes precedence over `max_length`).
    pub max_new_tokens: Option<usize>,
    /// Total length (prompt + new tokens) at most; transformers' default is 20.
    pub max_length: usize,
    /// New tokens before an end-of-sequence token is allowed.
    pub min_new_tokens: usize,
    /// The end token is banned while the sequence (prompt or decoder start included) is
    /// shorter than this, as transformers' `min_length`.
    pub min_length: usize,
    /// Sample instead of picking the most likely token.
    pub do_sample: bool,
    /// Divides the logits before sampling.
    pub temperature: f32,
    /// Keep only the `top_k` most likely tokens when sampling (0: off); default 50.
    pub top_k: usize,
    /// Keep the smallest set of tokens whose probability reaches `top_p` (1.0: off).
    pub top_p: f32,
    /// Beams of beam search (1: no beam search).
    pub num_beams: usize,
    /// Exponent of the length normalisation of finished beams.
    pub length_penalty: f32,
    /// When beam search stops.
    pub early_stopping: EarlyStopping,
    /// Sequences returned per prompt.
    pub num_return_sequences: usize,
    /// No n-gram of this size occurs twice (0: off).
    pub no_repeat_ngram_size: usize,
    /// Penalty (> 1 discourages) on tokens already in the sequence (1.0: off).
    pub repetition_penalty: f32,
    /// Tokens that end a sequence.
    pub eos_token_ids: Vec<u32>,
    /// The token that fills finished sequences and left padding.
    pub pad_token_id: Option<u32>,
    /// Beginning-of-sequence token (prepended by tokenizers that add it).
    pub bos_token_id: Option<u32>,
    /// The token forced as the first generated one (BART-large, mBART).
    pub forced_bos_token_id: Option<u32>,
    /// The token forced when the maximum length is reached (BART, Marian).
    pub forced_eos_token_id: Option<u32>,
    /// Generation stops after a sequence's new text contains one of these.
    pub stop_strings: Vec<String>,
    /// Seed of the sampling random numbers.
    pub seed: u64,
}

impl Default for GenerationConfig {
    fn default() -> Self {
        Self {
            max_new_tokens: None,
            max_length: 20,
            min_new_tokens: 0,
            min_length: 0,
            forced_bos_token_id: None,
            forced_eos_token_id: None,
            do_sample: false,
            temperature: 1.0,
            top_k: 50,
            top_p: 1.0,
            num_beams: 1,
            length_penalty: 1.0,
            early_stopping: EarlyStopping::Heuristic,
            num_return_sequences: 1,
            no_repeat_ngram_size: 0,
            repetition_penalty: 1.0,
            eos_token_ids: Vec::new(),
            pad_token_id: None,
            bos_token_id: None,
            stop_strings: Vec::new(),
            seed: 42,
        }
    }
}

fn ids(v: &Value) -> Option<Vec<u32>> {
    match v {
        Value::Number(n) => n.as_u64().map(|n| vec![n as u32]),
        Value::Array(a) => Some(
            a.iter()
                .filter_map(Value::as_u64)
                .map(|n| n as u32)
                .collect(),
        ),
        _ => None,
    }
}

impl GenerationConfig {
    /// transformers' defaults with the special tokens of the model's config.
    pub fn from_special_tokens(
        bos_token_id: Option<u32>,
        eos_token_ids: &[u32],
        pad_token_id: Option<u32>,
    ) -> Self {
        Self {
            eos_token_ids: eos_token_ids.to_vec(),
            pad_token_id,
            bos_token_id,
            ..Self::default()
        }
    }

    /// `defaults` (the model config's tokens) overridden by `generation_config.json` when the
    /// folder has one.
    pub fn from_folder(dir: &Path, defaults: Self) -> Result<Self> {
        let mut g = defaults;
        let path = dir.join("generation_config.json");
        if path.exists() {
            let v: Value = crate::fsio::read_json(&path)?;
            g.apply_json(&v, &path)?;
        }
        Ok(g)
    }

    /// Overrides the fields present in a `generation_config.json` value.
    pub fn apply_json(&mut self, v: &Value, path: &Path) -> Result<()> {
        let get = |k: &str| v.get(k).filter(|x| !x.is_null());
        let bad = |k: &str| Error::Parse {
            path: path.to_path_buf(),
            message: format!("field \"{k}\" has an unusable value"),
        };
        let uint = |k: &str| -> Result<Option<usize>> {
            get(k)
                .map(|x| x.as_u64().map(|n| n as usize).ok_or_else(|| bad(k)))
                .transpose()
        };
        let float = |k: &str| -> Result<Option<f32>> {
            get(k)
                .map(|x| x.as_f64().map(|n| n as f32).ok_or_else(|| bad(k)))
                .transpose()
        };
        if let Some(x) = get("eos_token_id") {
            self.eos_token_ids = ids(x).ok_or_else(|| bad("eos_token_id"))?;
        }
        if let Some(x) = get("pad_token_id") {
            self.pad_token_id = ids(x).and_then(|i| i.first().copied());
        }
        if let Some(x) = get("bos_token_id") {
            self.bos_token_id = ids(x).and_then(|i| i.first().copied());
        }
        for (key, slot) in [
            ("forced_bos_token_id", &mut self.forced_bos_token_id),
            ("forced_eos_token_id", &mut self.forced_eos_token_id),
        ] {
            if let Some(x) = get(key) {
                *slot = ids(x).and_then(|i| i.first().copied());
            }
        }
        self.max_new_tokens = uint("max_new_tokens")?.or(self.max_new_tokens);
        self.max_length = uint("max_length")?.unwrap_or(self.max_length);
        self.min_new_tokens = uint("min_new_tokens")?.unwrap_or(self.min_new_tokens);
        self.min_length = uint("min_length")?.unwrap_or(self.min_length);
        self.do_sample = get("do_sample")
            .and_then(Value::as_bool)
            .unwrap_or(self.do_sample);
        self.temperature = float("temperature")?.unwrap_or(self.temperature);
        self.top_k = uint("top_k")?.unwrap_or(self.top_k);
        self.top_p = float("top_p")?.unwrap_or(self.top_p);
        self.num_beams = uint("num_beams")?.unwrap_or(self.num_beams);
        self.length_penalty = float("length_penalty")?.unwrap_or(self.length_penalty);
        self.num_return_sequences =
            uint("num_return_sequences")?.unwrap_or(self.num_return_sequences);
        self.no_repeat_ngram_size =
            uint("no_repeat_ngram_size")?.unwrap_or(self.no_repeat_ngram_size);
        self.repetition_penalty = float("repetition_penalty")?.unwrap_or(self.repetition_penalty);
        if let Some(x) = get("early_stopping") {
            self.early_stopping = match x {
                Value::Bool(true) => EarlyStopping::Immediately,
                Value::Bool(false) => EarlyStopping::Heuristic,
                Value::String(s) if s == "never" => EarlyStopping::Never,
                _ => return Err(bad("early_stopping")),
            };
        }
        if let Some(Value::Array(a)) = get("stop_strings") {
            self.stop_strings = a
                .iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect();
        } else if let Some(Value::String(s)) = get("stop_strings") {
            self.stop_strings = vec![s.clone()];
        }
        Ok(())
    }

    /// generation_config.json: the fields that differ from transformers' defaults, and the
    /// special tokens.
    pub fn to_json(&self) -> Value {
        let d = Self::default();
        let mut v = json!({});
        let map = v.as_object_mut().expect("an object");
        let eos = match self.eos_token_ids.as_slice() {
            [] => Value::Null,
            [one] => json!(one),
            many => json!(many),
        };
        map.insert("eos_token_id".into(), eos);
        map.insert("bos_token_id".into(), json!(self.bos_token_id));
        map.insert("pad_token_id".into(), json!(self.pad_token_id));
        if let Some(n) = self.max_new_tokens {
            map.insert("max_new_tokens".into(), json!(n));
        }
        let mut put = |k: &str, differs: bool, val: Value| {
            if differs {
                map.insert(k.into(), val);
            }
        };
        put(
            "max_length",
            self.max_length != d.max_length,
            json!(self.max_length),
        );
        put(
            "min_length",
            self.min_length != d.min_length,
            json!(self.min_length),
        );
        put("do_sample", self.do_sample, json!(true));
        put(
            "temperature",
            self.temperature != d.temperature,
            json!(self.temperature),
        );
        put("top_k", self.top_k != d.top_k, json!(self.top_k));
        put("top_p", self.top_p != d.top_p, json!(self.top_p));
        put("num_beams", self.num_beams != 1, json!(self.num_beams));
        put(
            "repetition_penalty",
            self.repetition_penalty != 1.0,
            json!(self.repetition_penalty),
        );
        put(
            "no_repeat_ngram_size",
            self.no_repeat_ngram_size != 0,
            json!(self.no_repeat_ngram_size),
        );
        put(
            "forced_bos_token_id",
            self.forced_bos_token_id.is_some(),
            json!(self.forced_bos_token_id),
        );
        put(
            "forced_eos_token_id",
            self.forced_eos_token_id.is_some(),
            json!(self.forced_eos_token_id),
        );
        v
    }

    /// Checks the settings, naming the first unusable one.
    pub fn validate(&self) -> Result<()> {
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(Error::config(
                "top_p",
                format!("{} is outside (0, 1]", self.top_p),
            ));
        }
        if !(self.temperature > 0.0 && self.temperature.is_finite()) {
            return Err(Error::config(
                "temperature",
                format!(
                    "{} must be a positive number (use greedy decoding for temperature 0)",
                    self.temperature
                ),
            ));
        }
        if self.repetition_penalty.is_nan() || self.repetition_penalty <= 0.0 {
            return Err(Error::config(
                "repetition_penalty",
                format!("{} must be positive", self.repetition_penalty),
            ));
        }
        if self.num_beams == 0 {
            return Err(Error::config("num_beams", "must be at least 1"));
        }
        if self.num_return_sequences == 0 {
            return Err(Error::config("num_return_sequences", "must be at least 1"));
        }
        if self.num_beams > 1 && self.num_return_sequences > self.num_beams {
            return Err(Error::config(
                "num_return_sequences",
                format!(
                    "{} is more than num_beams = {}",
                    self.num_return_sequences, self.num_beams
                ),
            ));
        }
        if self.num_beams == 1 && !self.do_sample && self.num_return_sequences > 1 {
            return Err(Error::config(
                "num_return_sequences",
                "greedy search returns one sequence per prompt (sample or use beams)",
            ));
        }
        if self.num_beams > 1 && self.do_sample {
            return Err(Error::config(
                "num_beams",
                "beam search with sampling is not supported; use one or the other",
            ));
        }
        if self.max_new_tokens == Some(0) {
            return Err(Error::config("max_new_tokens", "must be at least 1"));
        }
        if !self.length_penalty.is_finite() {
            return Err(Error::config(
                "length_penalty",
                format!("{} is not a number", self.length_penalty),
            ));
        }
        if let Some(max) = self.max_new_tokens.filter(|&max| self.min_new_tokens > max) {
            return Err(Error::config(
                "min_new_tokens",
                format!(
                    "{} is more than max_new_tokens = {max}",
                    self.min_new_tokens
                ),
            ));
        }
        Ok(())
    }

    /// The total length limit for prompts `prompt_len` tokens long.
    pub fn max_total_length(&self, prompt_len: usize) -> usize {
        match self.max_new_tokens {
            Some(n) => prompt_len + n,
            None => self.max_length,
        }
    }
}
