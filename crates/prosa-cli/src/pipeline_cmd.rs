//! `prosa pipeline TASK --model DIR TEXT…`: Hugging Face-style pipelines, with JSON shaped like
//! transformers' outputs.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use prosa::device::DeviceSpec;
use serde_json::{json, Map, Value};

use crate::print_json;

/// The tasks.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum PipelineTask {
    /// Class and score of each text (any prosa classifier folder).
    TextClassification,
    /// Entities (NER) with their character spans.
    TokenClassification,
    /// The span of each text (a context) that answers --question.
    QuestionAnswering,
    /// The most probable tokens for the mask token.
    FillMask,
    /// The last hidden state of every token, as transformers returns it ([1][tokens][hidden]).
    FeatureExtraction,
    /// One vector per text (mean or CLS pooling; normalised as the folder says).
    SentenceEmbedding,
    /// The prompt and its continuation (a decoder folder or GGUF file).
    TextGeneration,
    /// The translation of each text (a prosa translator, T5, BART or Marian folder).
    Translation,
    /// The output of a T5, BART or Marian folder for each text.
    #[value(name = "text2text-generation")]
    Text2TextGeneration,
    /// The summary of each text (T5 gets its "summarize: " prefix).
    Summarization,
}

/// Flags of `prosa pipeline`.
#[derive(Args)]
pub struct PipelineArgs {
    /// The task.
    task: PipelineTask,
    /// The model folder.
    #[arg(long)]
    model: PathBuf,
    /// Results per text: classes [default: 1] or mask fillings [default: 5]; text-generation
    /// with sampling: the sampling top-k.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    top_k: Option<u64>,
    /// token-classification: none, simple, first, average or max (transformers'
    /// aggregation_strategy) [default: none].
    #[arg(long)]
    aggregation_strategy: Option<String>,
    /// token-classification, question-answering: tokens shared by the windows of a text longer
    /// than the model [default: 32; 128 for question-answering].
    #[arg(long)]
    stride: Option<usize>,
    /// question-answering: the question asked of every context text.
    #[arg(long)]
    question: Option<String>,
    /// Read texts from a file, one per line (besides any given as arguments).
    #[arg(long)]
    input: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    /// The texts.
    texts: Vec<String>,
    /// text-generation, translation: new tokens at most.
    #[arg(long, help_heading = "Text generation")]
    max_new_tokens: Option<usize>,
    /// text-generation: sample (with --temperature, --top-p, and --top-k as the sampling top-k).
    #[arg(long, help_heading = "Text generation")]
    do_sample: bool,
    /// text-generation: sampling temperature.
    #[arg(long, help_heading = "Text generation")]
    temperature: Option<f32>,
    /// text-generation: nucleus sampling threshold in (0, 1].
    #[arg(long, help_heading = "Text generation")]
    top_p: Option<f32>,
    /// text-generation: seed of the sampling.
    #[arg(long, help_heading = "Text generation")]
    seed: Option<u64>,
    /// text-generation: sequences per text.
    #[arg(long, help_heading = "Text generation")]
    num_return_sequences: Option<usize>,
    /// translation: beam search with B beams.
    #[arg(long, help_heading = "Translation")]
    num_beams: Option<usize>,
    /// text-generation: wrap each text in the model's chat template as a user turn.
    #[arg(long, help_heading = "Text generation")]
    chat: bool,
}

impl PipelineTask {
    /// The task's name in the library's registry.
    fn name(self) -> String {
        self.to_possible_value()
            .map(|v| v.get_name().to_string())
            .unwrap_or_default()
    }
}

impl PipelineArgs {
    /// The parameters of the flags that were given, named as the pipeline takes them.
    fn parameters(&self) -> Value {
        let mut p = Map::new();
        let mut put = |name: &str, value: Option<Value>| {
            if let Some(v) = value {
                p.insert(name.to_string(), v);
            }
        };
        put(
            "aggregation_strategy",
            self.aggregation_strategy.clone().map(Value::from),
        );
        put("stride", self.stride.map(Value::from));
        if matches!(self.task, PipelineTask::TextGeneration) {
            let sampling = self.do_sample || self.temperature.is_some() || self.top_p.is_some();
            put("max_new_tokens", self.max_new_tokens.map(Value::from));
            put("do_sample", sampling.then_some(Value::Bool(true)));
            put("temperature", self.temperature.map(Value::from));
            put("top_p", self.top_p.map(Value::from));
            put("top_k", self.top_k.filter(|_| sampling).map(Value::from));
            put("seed", self.seed.map(Value::from));
            put(
                "num_return_sequences",
                self.num_return_sequences.map(Value::from),
            );
            put("chat", self.chat.then_some(Value::Bool(true)));
        } else if matches!(
            self.task,
            PipelineTask::Translation
                | PipelineTask::Text2TextGeneration
                | PipelineTask::Summarization
        ) {
            put("max_new_tokens", self.max_new_tokens.map(Value::from));
            put("num_beams", self.num_beams.map(Value::from));
        } else {
            put("top_k", self.top_k.map(Value::from));
        }
        Value::Object(p)
    }

    /// The inputs: texts, or `{question, context}` pairs for question-answering.
    fn inputs(&self, texts: Vec<String>) -> anyhow::Result<Value> {
        if let PipelineTask::QuestionAnswering = self.task {
            let question = self
                .question
                .as_deref()
                .ok_or_else(|| anyhow::anyhow!("question-answering needs --question"))?;
            return Ok(Value::Array(
                texts
                    .into_iter()
                    .map(|c| json!({"question": question, "context": c}))
                    .collect(),
            ));
        }
        Ok(Value::Array(texts.into_iter().map(Value::from).collect()))
    }
}

/// Runs `prosa pipeline`.
pub fn run(a: PipelineArgs, device: DeviceSpec) -> anyhow::Result<()> {
    let texts = crate::read_args::texts_and_lines(&a.texts, a.input.as_deref())?;
    let pipeline = prosa::pipelines::pipeline(&a.task.name(), &a.model, &device.open()?)?;
    let results = pipeline.run(&a.inputs(texts.clone())?, &a.parameters())?;
    if a.json {
        return print_json(&results);
    }
    let results = results.as_array().cloned().unwrap_or_default();
    for (text, result) in texts.iter().zip(&results) {
        print_result(a.task, text, result);
    }
    Ok(())
}

/// One text's result, for people.
fn print_result(task: PipelineTask, text: &str, result: &Value) {
    let items = || result.as_array().cloned().unwrap_or_default();
    let num = |v: &Value, k: &str| v[k].as_f64().unwrap_or(f64::NAN);
    let str = |v: &Value, k: &str| v[k].as_str().unwrap_or_default().to_string();
    match task {
        PipelineTask::TextGeneration => {
            for g in items() {
                println!("{}\n", str(&g, "generated_text"));
            }
        }
        PipelineTask::TextClassification => {
            let shown: Vec<String> = items()
                .iter()
                .map(|s| format!("{} {:.3}", str(s, "label"), num(s, "score")))
                .collect();
            println!("{}\t{text}", shown.join(", "));
        }
        PipelineTask::TokenClassification => {
            println!("{text}");
            for e in items() {
                let kind = e["entity_group"]
                    .as_str()
                    .or(e["entity"].as_str())
                    .unwrap_or_default();
                println!(
                    "  {kind:<8} {:.3}  {:<24} [{}, {})",
                    num(&e, "score"),
                    str(&e, "word"),
                    e["start"],
                    e["end"]
                );
            }
        }
        PipelineTask::QuestionAnswering => println!(
            "{:.3}  [{}, {})  {}",
            num(result, "score"),
            result["start"],
            result["end"],
            str(result, "answer")
        ),
        PipelineTask::FillMask => {
            println!("{text}");
            for f in items() {
                println!(
                    "  {:.3}  {:<12} {}",
                    num(&f, "score"),
                    str(&f, "token_str"),
                    str(&f, "sequence")
                );
            }
        }
        PipelineTask::SentenceEmbedding => {
            let v = items();
            let head: Vec<String> = v
                .iter()
                .take(5)
                .map(|x| format!("{:.6}", x.as_f64().unwrap_or(f64::NAN)))
                .collect();
            println!("[{}, …] ({} values)\t{text}", head.join(", "), v.len());
        }
        PipelineTask::Translation => println!("{}", str(result, "translation_text")),
        PipelineTask::Text2TextGeneration => println!("{}", str(result, "generated_text")),
        PipelineTask::Summarization => println!("{}", str(result, "summary_text")),
        PipelineTask::FeatureExtraction => {
            let tokens = result[0].as_array().map_or(0, Vec::len);
            let width = result[0][0].as_array().map_or(0, Vec::len);
            println!("{tokens} tokens × {width} values\t{text}");
        }
    }
}
