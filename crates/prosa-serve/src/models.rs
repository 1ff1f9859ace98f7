//! The models a server holds, loaded once at start: a decoder (a folder of a decoder family or
//! a `.gguf` file) gets a continuous-batching [`Engine`]; an encoder folder gets a sentence
//! embedder behind a [`Batcher`]; other folders (classifiers, translators) serve pipelines only. Any other pipeline of a model (classification, NER,
//! fill-mask, translation, …) loads on its first request, once, and batches from then on.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use candle_core::Device;
use serde_json::Value;

use prosa::models::decoder::{DecoderFamily, DecoderModel};
use prosa::pipelines::{pipeline, tasks, Params, SentenceEmbedder};

use crate::batcher::{BatchLimits, Batcher};
use crate::engine::{Engine, EngineLimits};
use crate::error::ApiError;
use crate::metrics::Metrics;

/// A model to serve: its name in requests and where it is.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelSpec {
    /// The name clients use.
    pub name: String,
    /// A model folder or `.gguf` file.
    pub path: PathBuf,
}

impl ModelSpec {
    /// Reads `NAME=PATH` or `PATH` (named after the folder or the file's stem).
    pub fn parse(text: &str) -> Result<Self, String> {
        let (name, path) = match text.split_once('=') {
            Some((name, path)) if !name.is_empty() && !name.contains('/') => {
                (name.to_string(), PathBuf::from(path))
            }
            _ => {
                let path = PathBuf::from(text);
                // A .gguf file is named by its stem, a folder by its whole name.
                let gguf = path
                    .extension()
                    .is_some_and(|e| e.eq_ignore_ascii_case("gguf"));
                let stem = if gguf {
                    path.file_stem()
                } else {
                    path.file_name()
                }
                .map(|s| s.to_string_lossy().into_owned())
                .filter(|s| !s.is_empty())
                .ok_or_else(|| format!("'{text}' names no folder or file"))?;
                (stem, path)
            }
        };
        if path.as_os_str().is_empty() {
            return Err(format!("'{text}': the path is empty"));
        }
        Ok(Self { name, path })
    }
}

/// The sentence embedder's output for one text: its vector and its token count.
pub type Embedding = (Vec<f32>, usize);

/// One served model.
pub struct ServedModel {
    /// Its name.
    pub name: String,
    /// Where it was loaded from.
    pub path: PathBuf,
    /// When it was loaded (Unix seconds, OpenAI's `created`).
    pub created: u64,
    /// Generation, for decoders.
    pub engine: Option<Engine>,
    /// Sentence embeddings, for encoders.
    pub embedder: Option<Batcher<String, Embedding>>,
    pipelines: Mutex<HashMap<String, Arc<Batcher<Value, Value>>>>,
}

impl ServedModel {
    /// What the model does, for `/v1/models`: `decoder` (generation), `encoder` (embeddings
    /// and pipelines) or `pipeline` (pipelines only).
    pub fn kind(&self) -> &'static str {
        if self.engine.is_some() {
            "decoder"
        } else if self.embedder.is_some() {
            "encoder"
        } else {
            "pipeline"
        }
    }

    /// Requests waiting for this model.
    pub fn queued(&self) -> usize {
        let engine = self.engine.as_ref().map_or(0, Engine::queued);
        let embedder = self.embedder.as_ref().map_or(0, Batcher::queued);
        // `try_lock`: a pipeline loading (seconds) holds the map, and /health must not wait.
        let pipelines: usize = self
            .pipelines
            .try_lock()
            .map(|p| p.values().map(|b| b.queued()).sum())
            .unwrap_or(0);
        engine + embedder + pipelines
    }
}

/// How models take work.
#[derive(Debug, Clone, Copy)]
pub struct WorkLimits {
    /// Batching of one-shot work.
    pub batch: BatchLimits,
    /// Generation.
    pub engine: EngineLimits,
}

/// Every served model.
pub struct Models {
    list: Vec<Arc<ServedModel>>,
    device: Device,
    limits: WorkLimits,
}

fn is_decoder(path: &Path) -> bool {
    if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("gguf"))
    {
        return true;
    }
    prosa::models::folder::model_type(path)
        .ok()
        .and_then(|t| DecoderFamily::parse(&t))
        .is_some()
}

impl Models {
    /// Loads every model (an error names the model that failed).
    pub fn load(
        specs: &[ModelSpec],
        device: &Device,
        limits: WorkLimits,
        metrics: &Arc<Metrics>,
    ) -> prosa::Result<Self> {
        let created = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut list = Vec::new();
        for spec in specs {
            if list.iter().any(|m: &Arc<ServedModel>| m.name == spec.name) {
                return Err(prosa::Error::config(
                    "--model",
                    format!("two models are named '{}'", spec.name),
                ));
            }
            let (engine, embedder) = if is_decoder(&spec.path) {
                let model = Arc::new(DecoderModel::from_pretrained(&spec.path, device)?);
                model.tokenizer()?;
                let engine = Engine::spawn(&spec.name, model, limits.engine, metrics.clone());
                (Some(engine), None)
            } else if !spec.path.exists() {
                return Err(prosa::Error::folder(&spec.path, "not found"));
            } else {
                // An encoder embeds; any other folder (a classifier, a translator) serves its
                // pipelines, loaded on first use.
                match SentenceEmbedder::from_pretrained(&spec.path, device) {
                    Ok(embedder) => (
                        None,
                        Some(embedding_batcher(&spec.name, embedder, limits.batch)),
                    ),
                    Err(_) => (None, None),
                }
            };
            list.push(Arc::new(ServedModel {
                name: spec.name.clone(),
                path: spec.path.clone(),
                created,
                engine,
                embedder,
                pipelines: Mutex::new(HashMap::new()),
            }));
        }
        Ok(Self {
            list,
            device: device.clone(),
            limits,
        })
    }

    /// Every model.
    pub fn all(&self) -> &[Arc<ServedModel>] {
        &self.list
    }

    /// The model called `name`, or a 404 listing the served ones.
    pub fn get(&self, name: &str) -> Result<Arc<ServedModel>, ApiError> {
        self.list
            .iter()
            .find(|m| m.name == name)
            .cloned()
            .ok_or_else(|| {
                let names: Vec<String> = self.list.iter().map(|m| m.name.clone()).collect();
                ApiError::model_not_found(name, &names)
            })
    }

    /// The batcher of `task` on `model`, loading the pipeline on first use (off the async
    /// runtime). An unknown task is a 404; a model that cannot do the task, a 400.
    pub async fn pipeline(
        &self,
        model: &Arc<ServedModel>,
        task: &str,
    ) -> Result<Arc<Batcher<Value, Value>>, ApiError> {
        known_task(task)?;
        // On the async runtime only `try_lock`: a pipeline loading holds the map, and the
        // blocking task below waits for it instead.
        if let Some(b) = model
            .pipelines
            .try_lock()
            .ok()
            .and_then(|p| p.get(task).cloned())
        {
            return Ok(b);
        }
        let (model, task, device, limits) = (
            model.clone(),
            task.to_string(),
            self.device.clone(),
            self.limits.batch,
        );
        tokio::task::spawn_blocking(move || {
            let mut loaded = model
                .pipelines
                .lock()
                .map_err(|_| ApiError::internal("a pipeline failed to load earlier"))?;
            if let Some(b) = loaded.get(&task) {
                return Ok(b.clone());
            }
            let p = pipeline(&task, &model.path, &device).map_err(|e| {
                ApiError::bad_param("model", format!("'{}' cannot run {task}: {e}", model.name))
            })?;
            let name = format!("{}/{task}", model.name);
            let work_task = task.clone();
            let batcher = Arc::new(Batcher::spawn(
                &name,
                limits,
                Box::new(move |key: &str, inputs: &[Value]| {
                    let parameters: Value =
                        serde_json::from_str(key).map_err(|e| ApiError::internal(e.to_string()))?;
                    let params = Params::new(&parameters, &work_task)?;
                    Ok(p.run_batch(inputs, &params)?)
                }),
            ));
            loaded.insert(task, batcher.clone());
            Ok(batcher)
        })
        .await
        .map_err(|e| ApiError::internal(format!("loading the pipeline failed: {e}")))?
    }
}

/// A 404 naming the known pipelines unless `task` is one of them.
pub fn known_task(task: &str) -> Result<(), ApiError> {
    if tasks().iter().any(|t| t.name == task) {
        return Ok(());
    }
    let known: Vec<&str> = tasks().iter().map(|t| t.name).collect();
    Err(ApiError::not_found(format!(
        "There is no pipeline '{task}' (known: {}).",
        known.join(", ")
    )))
}

/// Sentence embeddings of batched texts, with each text's token count.
fn embedding_batcher(
    name: &str,
    embedder: SentenceEmbedder,
    limits: BatchLimits,
) -> Batcher<String, Embedding> {
    Batcher::spawn(
        &format!("{name}/embeddings"),
        limits,
        Box::new(move |_key: &str, texts: &[String]| {
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            let vectors = embedder.embed(&refs)?;
            let tokenizer = embedder.model().tokenizer.as_ref();
            let counts = refs
                .iter()
                .map(|t| {
                    tokenizer
                        .and_then(|tk| tk.encode(t, true).ok())
                        .map_or(0, |ids| ids.len().min(embedder.max_length))
                })
                .collect::<Vec<_>>();
            Ok(vectors.into_iter().zip(counts).collect())
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_model_is_named_after_its_folder_or_file_unless_named() {
        let spec = ModelSpec::parse("/models/all-MiniLM-L6-v2").unwrap();
        assert_eq!(spec.name, "all-MiniLM-L6-v2");
        let spec = ModelSpec::parse("assets/SmolLM2-135M-Instruct.Q4_1.gguf").unwrap();
        assert_eq!(spec.name, "SmolLM2-135M-Instruct.Q4_1");
        let spec = ModelSpec::parse("chat=assets/smol.gguf").unwrap();
        assert_eq!(
            (spec.name.as_str(), spec.path.as_path()),
            ("chat", Path::new("assets/smol.gguf"))
        );
        assert!(ModelSpec::parse("x=").is_err());
    }
}
