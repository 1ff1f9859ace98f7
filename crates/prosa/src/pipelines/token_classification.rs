//! `token-classification` (NER): entities of raw texts with their character spans, with
//! transformers' aggregation strategies, and a sliding window over texts longer than the model.

use std::path::Path;

use candle_core::Device;
use serde::Serialize;
use serde_json::Value;

use super::registry::{input_texts, to_values, Params, Pipeline};
use crate::error::{Error, Result};
use crate::models::encoder::{EncoderInput, EncoderTokenClassifier};
use crate::text::{EncodeOptions, Padding};

/// How sub-word predictions become entities (transformers' `aggregation_strategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Aggregation {
    /// Every non-`O` token on its own.
    #[default]
    None,
    /// Consecutive tokens of one type (a `B-` starts a new one) form an entity; score = mean.
    Simple,
    /// A word takes the tag of its first sub-token.
    First,
    /// A word takes the tag of its sub-tokens' mean probabilities.
    Average,
    /// A word takes the tag of its most confident sub-token.
    Max,
}

impl std::str::FromStr for Aggregation {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "none" => Ok(Self::None),
            "simple" => Ok(Self::Simple),
            "first" => Ok(Self::First),
            "average" => Ok(Self::Average),
            "max" => Ok(Self::Max),
            other => Err(format!(
                "unknown aggregation strategy '{other}' (none, simple, first, average, max)"
            )),
        }
    }
}

/// One entity, shaped as transformers' output: `entity` and `index` without aggregation,
/// `entity_group` with it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Entity {
    /// The tag (`B-PER`), without aggregation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entity: Option<String>,
    /// The type (`PER`), with aggregation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entity_group: Option<String>,
    /// Probability (mean over the grouped tokens).
    pub score: f32,
    /// Token position (special tokens counted), without aggregation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<usize>,
    /// The entity's text as the tokenizer decodes it.
    pub word: String,
    /// Character offset of the start in the input text.
    pub start: usize,
    /// Character offset of the end (exclusive).
    pub end: usize,
}

/// A token (no aggregation, `simple`) or a word (`first`, `average`, `max`) with its tag.
struct Unit {
    tag: String,
    score: f32,
    ids: Vec<u32>,
    start: usize,
    end: usize,
}

/// A token with its tag probabilities.
struct Scored {
    id: u32,
    probs: Vec<f32>,
    start: usize,
    end: usize,
    word: Option<u32>,
}

/// A token-classification folder as a pipeline.
pub struct TokenClassification {
    model: EncoderTokenClassifier,
    /// Tokens per window (special tokens included).
    pub max_length: usize,
    /// Tokens shared by consecutive windows of a long text.
    pub stride: usize,
}

impl TokenClassification {
    /// Loads a `…ForTokenClassification` folder.
    pub fn from_pretrained(dir: &Path, device: &Device) -> Result<Self> {
        let model = EncoderTokenClassifier::load(dir, device)?;
        let max_length = model.model().config.max_position_embeddings.min(512);
        Ok(Self {
            model,
            max_length,
            stride: 32,
        })
    }

    /// The entities of each text.
    pub fn run(&self, texts: &[&str], aggregation: Aggregation) -> Result<Vec<Vec<Entity>>> {
        self.run_with_stride(texts, aggregation, self.stride)
    }

    /// [`run`](Self::run) with windows sharing `stride` tokens.
    pub fn run_with_stride(
        &self,
        texts: &[&str],
        aggregation: Aggregation,
        stride: usize,
    ) -> Result<Vec<Vec<Entity>>> {
        texts
            .iter()
            .map(|t| self.entities(t, aggregation, stride))
            .collect()
    }

    /// Every token of `text` with its probabilities; texts longer than the model are read in
    /// overlapping windows and each token keeps the window where it is most central.
    fn score_tokens(&self, text: &str, stride: usize) -> Result<Vec<Scored>> {
        let tokenizer = self.model.tokenizer();
        let options = EncodeOptions {
            add_special_tokens: false,
            padding: Padding::None,
            ..Default::default()
        };
        let enc = tokenizer.encode_batch(&[text], None, &options)?;
        let (ids, offsets, words) = (&enc.input_ids[0], &enc.offsets[0], &enc.word_ids[0]);
        let (cls, sep) = ["[CLS]", "<s>"]
            .iter()
            .zip(["[SEP]", "</s>"])
            .find_map(|(c, s)| Some((tokenizer.token_to_id(c)?, tokenizer.token_to_id(s)?)))
            .ok_or_else(|| Error::Tokenizer("no [CLS]/[SEP] (or <s>/</s>) tokens".into()))?;
        let width = self.max_length.saturating_sub(2).max(1);
        if stride >= width {
            return Err(Error::config("stride", format!("must be below {width}")));
        }
        let mut best: Vec<Option<(usize, Vec<f32>)>> = vec![None; ids.len()];
        let mut start = 0;
        loop {
            let end = (start + width).min(ids.len());
            let mut window = vec![cls];
            window.extend_from_slice(&ids[start..end]);
            window.push(sep);
            let input = EncoderInput {
                attention_mask: vec![vec![1; window.len()]],
                input_ids: vec![window],
                token_type_ids: None,
            };
            let probs = self
                .model
                .token_probabilities(&input)?
                .get(0)?
                .to_vec2::<f32>()?;
            for (i, slot) in best.iter_mut().enumerate().take(end).skip(start) {
                let margin = (i - start).min(end - 1 - i);
                if slot.as_ref().is_none_or(|(m, _)| margin > *m) {
                    *slot = Some((margin, probs[i - start + 1].clone()));
                }
            }
            if end == ids.len() {
                break;
            }
            start = end - stride;
        }
        Ok(best
            .into_iter()
            .enumerate()
            .map(|(i, b)| Scored {
                id: ids[i],
                probs: b.map(|(_, p)| p).unwrap_or_default(),
                start: offsets[i].0,
                end: offsets[i].1,
                word: words[i],
            })
            .collect())
    }

    fn entities(&self, text: &str, aggregation: Aggregation, stride: usize) -> Result<Vec<Entity>> {
        let tokens = self.score_tokens(text, stride)?;
        let tags = self.model.tags();
        let argmax = |p: &[f32]| {
            (0..p.len())
                .max_by(|&a, &b| p[a].total_cmp(&p[b]))
                .unwrap_or(0)
        };
        let units: Vec<Unit> = match aggregation {
            Aggregation::None | Aggregation::Simple => tokens
                .iter()
                .map(|t| {
                    let k = argmax(&t.probs);
                    Unit {
                        tag: tags.name(k as u32).to_string(),
                        score: t.probs[k],
                        ids: vec![t.id],
                        start: t.start,
                        end: t.end,
                    }
                })
                .collect(),
            Aggregation::First | Aggregation::Average | Aggregation::Max => {
                let mut words: Vec<Vec<&Scored>> = Vec::new();
                for t in &tokens {
                    match words.last_mut() {
                        Some(w) if t.word.is_some() && w[0].word == t.word => w.push(t),
                        _ => words.push(vec![t]),
                    }
                }
                words
                    .iter()
                    .map(|w| {
                        let probs: Vec<f32> = match aggregation {
                            Aggregation::First => w[0].probs.clone(),
                            Aggregation::Max => w
                                .iter()
                                .max_by(|a, b| {
                                    a.probs[argmax(&a.probs)].total_cmp(&b.probs[argmax(&b.probs)])
                                })
                                .map(|t| t.probs.clone())
                                .unwrap_or_default(),
                            _ => (0..w[0].probs.len())
                                .map(|k| w.iter().map(|t| t.probs[k]).sum::<f32>() / w.len() as f32)
                                .collect(),
                        };
                        let k = argmax(&probs);
                        let ids = w.iter().map(|t| t.id).collect();
                        Unit {
                            tag: tags.name(k as u32).to_string(),
                            score: probs[k],
                            ids,
                            start: w[0].start,
                            end: w[w.len() - 1].end,
                        }
                    })
                    .collect()
            }
        };
        let decode = |ids: &[u32]| self.model.tokenizer().decode(ids, true);
        if aggregation == Aggregation::None {
            return units
                .into_iter()
                .enumerate()
                .filter(|(_, u)| u.tag != "O")
                .map(|(i, u)| {
                    Ok(Entity {
                        word: decode(&u.ids)?,
                        entity: Some(u.tag),
                        entity_group: None,
                        score: u.score,
                        index: Some(i + 1),
                        start: u.start,
                        end: u.end,
                    })
                })
                .collect();
        }
        // Group consecutive units of one type; a B- tag starts a new group. The group's tag is
        // its type, its score the mean of its units'.
        let mut groups: Vec<(Unit, usize)> = Vec::new();
        for unit in units {
            let (bi, kind) = unit.tag.split_once('-').unwrap_or(("O", unit.tag.as_str()));
            let (bi, kind) = (bi.to_string(), kind.to_string());
            match groups.last_mut() {
                Some((g, n)) if g.tag == kind && bi != "B" => {
                    g.score += unit.score;
                    g.ids.extend(unit.ids);
                    g.end = unit.end;
                    *n += 1;
                }
                _ => groups.push((Unit { tag: kind, ..unit }, 1)),
            }
        }
        groups
            .into_iter()
            .filter(|(g, _)| g.tag != "O")
            .map(|(g, n)| {
                Ok(Entity {
                    word: decode(&g.ids)?,
                    entity: None,
                    entity_group: Some(g.tag),
                    score: g.score / n as f32,
                    index: None,
                    start: g.start,
                    end: g.end,
                })
            })
            .collect()
    }
}

/// Parameters of the `token-classification` pipeline.
pub const PARAMETERS: &[&str] = &["aggregation_strategy", "stride"];

impl Pipeline for TokenClassification {
    fn task(&self) -> &'static str {
        "token-classification"
    }

    fn run_batch(&self, inputs: &[Value], params: &Params) -> Result<Vec<Value>> {
        let aggregation: Aggregation = params
            .str("aggregation_strategy", "none")?
            .parse()
            .map_err(|e: String| Error::config("parameters.aggregation_strategy", e))?;
        let stride = params.usize("stride", self.stride)?;
        to_values(self.run_with_stride(&input_texts(inputs)?, aggregation, stride)?)
    }
}
