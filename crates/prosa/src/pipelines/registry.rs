//! Every pipeline behind one trait — JSON inputs and parameters in, JSON out in transformers'
//! shapes — and the registry from task name to constructor that `prosa pipeline` (and the
//! server) use.

use std::path::Path;

use candle_core::Device;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// A pipeline as transformers' `pipeline(task, model)` is one: call it on inputs with
/// parameters, get JSON shaped as transformers returns it. Pipelines are `Send + Sync`: a
/// server shares one between its threads.
pub trait Pipeline: Send + Sync {
    /// The task name (`text-classification`, …).
    fn task(&self) -> &'static str;

    /// Runs on a batch of inputs, one result per input. `parameters` is a JSON object of the
    /// task's parameters; a parameter the task does not have is an error naming it.
    fn run_batch(&self, inputs: &[Value], parameters: &Params) -> Result<Vec<Value>>;

    /// Runs as transformers' pipelines are called: one input gives its result, a list of
    /// inputs a list of results.
    fn run(&self, inputs: &Value, parameters: &Value) -> Result<Value> {
        let params = Params::new(parameters, self.task())?;
        match inputs {
            Value::Array(list) => Ok(Value::Array(self.run_batch(list, &params)?)),
            one => Ok(self
                .run_batch(std::slice::from_ref(one), &params)?
                .pop()
                .unwrap_or(Value::Null)),
        }
    }
}

/// One registered task.
pub struct TaskEntry {
    /// Its name.
    pub name: &'static str,
    /// What it does, in a line.
    pub summary: &'static str,
    /// The parameters it takes.
    pub parameters: &'static [&'static str],
    /// Loads a model folder (or file) as the pipeline.
    pub load: fn(&Path, &Device) -> Result<Box<dyn Pipeline>>,
}

/// Every pipeline prosa has.
pub fn tasks() -> &'static [TaskEntry] {
    use super::*;
    const TASKS: &[TaskEntry] = &[
        TaskEntry {
            name: "text-classification",
            summary: "class and score of each text (any prosa classifier folder)",
            parameters: text_classification::PARAMETERS,
            load: |p, d| Ok(Box::new(TextClassification::from_pretrained(p, d)?)),
        },
        TaskEntry {
            name: "token-classification",
            summary: "entities (NER) with their character spans",
            parameters: token_classification::PARAMETERS,
            load: |p, d| Ok(Box::new(TokenClassification::from_pretrained(p, d)?)),
        },
        TaskEntry {
            name: "question-answering",
            summary: "the span of a context that answers a question",
            parameters: question_answering::PARAMETERS,
            load: |p, d| Ok(Box::new(QuestionAnswering::from_pretrained(p, d)?)),
        },
        TaskEntry {
            name: "fill-mask",
            summary: "the most probable tokens for the mask token",
            parameters: fill_mask::PARAMETERS,
            load: |p, d| Ok(Box::new(FillMask::from_pretrained(p, d)?)),
        },
        TaskEntry {
            name: "feature-extraction",
            summary:
                "the last hidden state of every token (transformers' shape: [1][tokens][hidden])",
            parameters: sentence_embedding::FEATURE_PARAMETERS,
            load: |p, d| Ok(Box::new(FeatureExtraction::from_pretrained(p, d)?)),
        },
        TaskEntry {
            name: "sentence-embedding",
            summary: "one pooled vector per text, as sentence-transformers computes it",
            parameters: sentence_embedding::PARAMETERS,
            load: |p, d| Ok(Box::new(SentenceEmbedder::from_pretrained(p, d)?)),
        },
        TaskEntry {
            name: "translation",
            summary: "a translator folder (prosa, T5, BART, Marian)'s translation of each text (translation_text)",
            parameters: translation::PARAMETERS,
            load: |p, d| Ok(Box::new(Translation::from_pretrained(p, d)?)),
        },
        TaskEntry {
            name: "text2text-generation",
            summary: "a T5, BART or Marian folder's output for each text (generated_text)",
            parameters: text2text::PARAMETERS,
            load: |p, d| Ok(Box::new(Text2Text::generation(p, d)?)),
        },
        TaskEntry {
            name: "summarization",
            summary: "a T5 or BART folder's summary of each text, with T5's prefix (summary_text)",
            parameters: text2text::PARAMETERS,
            load: |p, d| Ok(Box::new(Text2Text::summarization(p, d)?)),
        },
        TaskEntry {
            name: "text-generation",
            summary: "the prompt and its continuation (a decoder folder or GGUF file)",
            parameters: text_generation::PARAMETERS,
            load: |p, d| Ok(Box::new(TextGeneration::from_pretrained(p, d)?)),
        },
    ];
    TASKS
}

/// Loads `model` as the pipeline of `task` on `device`; an unknown task is an error listing
/// the known ones.
pub fn pipeline(task: &str, model: &Path, device: &Device) -> Result<Box<dyn Pipeline>> {
    let entry = tasks().iter().find(|t| t.name == task).ok_or_else(|| {
        let known: Vec<&str> = tasks().iter().map(|t| t.name).collect();
        Error::config(
            "task",
            format!("unknown pipeline '{task}' (known: {})", known.join(", ")),
        )
    })?;
    (entry.load)(model, device)
}

/// The parameters of one call, checked against the task's list.
pub struct Params {
    values: Map<String, Value>,
}

impl Params {
    /// Reads a JSON object (or null) of parameters for `task`; a name the task does not take
    /// is an error listing the ones it does.
    pub fn new(parameters: &Value, task: &str) -> Result<Self> {
        let values = match parameters {
            Value::Null => Map::new(),
            Value::Object(m) => m.clone(),
            _ => return Err(Error::config("parameters", "must be a JSON object")),
        };
        let known = tasks()
            .iter()
            .find(|t| t.name == task)
            .map_or(&[][..], |t| t.parameters);
        if let Some(bad) = values.keys().find(|k| !known.contains(&k.as_str())) {
            return Err(Error::config(
                format!("parameters.{bad}"),
                format!(
                    "{task} does not take it (it takes: {})",
                    if known.is_empty() {
                        "no parameters".to_string()
                    } else {
                        known.join(", ")
                    }
                ),
            ));
        }
        Ok(Self { values })
    }

    /// The raw object.
    pub fn as_object(&self) -> &Map<String, Value> {
        &self.values
    }

    /// A non-negative integer parameter, or `default`.
    pub fn usize(&self, name: &str, default: usize) -> Result<usize> {
        match self.values.get(name) {
            None | Some(Value::Null) => Ok(default),
            Some(v) => v.as_u64().map(|n| n as usize).ok_or_else(|| {
                Error::config(format!("parameters.{name}"), "must be a whole number ≥ 0")
            }),
        }
    }

    /// A string parameter, or `default`.
    pub fn str<'a>(&'a self, name: &str, default: &'a str) -> Result<&'a str> {
        match self.values.get(name) {
            None | Some(Value::Null) => Ok(default),
            Some(v) => v
                .as_str()
                .ok_or_else(|| Error::config(format!("parameters.{name}"), "must be a string")),
        }
    }

    /// A boolean parameter, or `default`.
    pub fn bool(&self, name: &str, default: bool) -> Result<bool> {
        match self.values.get(name) {
            None | Some(Value::Null) => Ok(default),
            Some(v) => v.as_bool().ok_or_else(|| {
                Error::config(format!("parameters.{name}"), "must be true or false")
            }),
        }
    }
}

/// The text of one input, or an error naming its position.
pub(crate) fn input_text(input: &Value, index: usize) -> Result<&str> {
    input.as_str().ok_or_else(|| {
        Error::config(
            format!("inputs[{index}]"),
            "must be a string (the text)".to_string(),
        )
    })
}

/// The texts of a batch of inputs.
pub(crate) fn input_texts(inputs: &[Value]) -> Result<Vec<&str>> {
    inputs
        .iter()
        .enumerate()
        .map(|(i, v)| input_text(v, i))
        .collect()
}

/// Serialises each result.
pub(crate) fn to_values<T: Serialize>(results: Vec<T>) -> Result<Vec<Value>> {
    results
        .into_iter()
        .map(|r| serde_json::to_value(r).map_err(|e| Error::config("output", e.to_string())))
        .collect()
}
