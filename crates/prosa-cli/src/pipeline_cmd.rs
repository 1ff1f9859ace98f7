//! `prosa pipeline TASK --model DIR TEXT…`: Hugging Face-style pipelines, with JSON shaped like
//! transformers' outputs.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, ValueEnum};
use prosa::pipelines::{
    Aggregation, FillMask, QuestionAnswering, SentenceEmbedder, TextClassification,
    TokenClassification,
};

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
    /// One vector per text (mean or CLS pooling; normalised as the folder says).
    FeatureExtraction,
    /// Same as feature-extraction (sentence-transformers' name).
    SentenceEmbedding,
    /// The prompt and its continuation (a decoder folder or GGUF file).
    TextGeneration,
}

/// Flags of `prosa pipeline`.
#[derive(Args)]
pub struct PipelineArgs {
    /// The task.
    task: PipelineTask,
    /// The model folder.
    #[arg(long)]
    model: PathBuf,
    /// Results per text (classes, or mask fillings); text-generation with sampling: the sampling top-k.
    #[arg(long, default_value_t = 1)]
    top_k: usize,
    /// token-classification: none, simple, first, average or max (transformers' aggregation_strategy).
    #[arg(long, default_value = "none")]
    aggregation_strategy: Aggregation,
    /// token-classification: tokens shared by the windows of a text longer than the model.
    #[arg(long, default_value_t = 32)]
    stride: usize,
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
    /// text-generation: new tokens at most.
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
    /// text-generation: wrap each text in the model's chat template as a user turn.
    #[arg(long, help_heading = "Text generation")]
    chat: bool,
}

impl PipelineArgs {
    /// The text-generation settings of the flags.
    fn generation(&self) -> crate::generate_cmd::GenerationFlags {
        let sampling = self.do_sample || self.temperature.is_some() || self.top_p.is_some();
        crate::generate_cmd::GenerationFlags {
            max_new_tokens: self.max_new_tokens,
            greedy: !sampling,
            temperature: self.temperature,
            top_k: (sampling && self.top_k != 1).then_some(self.top_k),
            top_p: self.top_p,
            seed: self.seed,
            num_return_sequences: self.num_return_sequences,
            chat: self.chat,
            ..Default::default()
        }
    }
}

/// Runs `prosa pipeline`.
pub fn run(a: PipelineArgs) -> anyhow::Result<()> {
    let mut texts = a.texts.clone();
    if let Some(path) = &a.input {
        let content =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        texts.extend(
            content
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(str::to_string),
        );
    }
    if texts.is_empty() {
        anyhow::bail!("no texts: give them as arguments or with --input FILE");
    }
    let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
    match a.task {
        PipelineTask::TextGeneration => {
            let pipeline = prosa::pipelines::TextGeneration::from_pretrained(&a.model)?;
            let flags = a.generation();
            let g = flags.config(&pipeline.model().generation);
            let results = pipeline.run(&texts, &g, flags.chat())?;
            if a.json {
                return print_json(&results);
            }
            for generations in results {
                for g in generations {
                    println!("{}\n", g.generated_text);
                }
            }
        }
        PipelineTask::TextClassification => {
            let results = TextClassification::from_pretrained(&a.model)?.run(&texts, a.top_k)?;
            if a.json {
                return print_json(&results);
            }
            for (text, scores) in texts.iter().zip(results) {
                let shown: Vec<String> = scores
                    .iter()
                    .map(|s| format!("{} {:.3}", s.label, s.score))
                    .collect();
                println!("{}\t{text}", shown.join(", "));
            }
        }
        PipelineTask::TokenClassification => {
            let mut pipeline = TokenClassification::from_pretrained(&a.model)?;
            pipeline.stride = a.stride;
            let results = pipeline.run(&texts, a.aggregation_strategy)?;
            if a.json {
                return print_json(&results);
            }
            for (text, entities) in texts.iter().zip(results) {
                println!("{text}");
                for e in entities {
                    let kind = e.entity_group.or(e.entity).unwrap_or_default();
                    println!(
                        "  {kind:<8} {:.3}  {:<24} [{}, {})",
                        e.score, e.word, e.start, e.end
                    );
                }
            }
        }
        PipelineTask::QuestionAnswering => {
            let question = a
                .question
                .as_deref()
                .ok_or_else(|| anyhow::anyhow!("question-answering needs --question"))?;
            let mut pipeline = QuestionAnswering::from_pretrained(&a.model)?;
            if a.stride != 32 {
                pipeline.stride = a.stride;
            }
            let answers = texts
                .iter()
                .map(|context| pipeline.answer(question, context))
                .collect::<prosa::Result<Vec<_>>>()?;
            if a.json {
                return print_json(&answers);
            }
            for answer in answers {
                println!(
                    "{:.3}  [{}, {})  {}",
                    answer.score, answer.start, answer.end, answer.answer
                );
            }
        }
        PipelineTask::FillMask => {
            let results = FillMask::from_pretrained(&a.model)?.run(&texts, a.top_k.max(5))?;
            if a.json {
                return print_json(&results);
            }
            for (text, fills) in texts.iter().zip(results) {
                println!("{text}");
                for f in fills {
                    println!("  {:.3}  {:<12} {}", f.score, f.token_str, f.sequence);
                }
            }
        }
        PipelineTask::FeatureExtraction | PipelineTask::SentenceEmbedding => {
            let vectors = SentenceEmbedder::from_pretrained(&a.model)?.embed(&texts)?;
            if a.json {
                return print_json(&vectors);
            }
            for (text, v) in texts.iter().zip(vectors) {
                let head: Vec<String> = v.iter().take(5).map(|x| format!("{x:.6}")).collect();
                println!("[{}, …] ({} values)\t{text}", head.join(", "), v.len());
            }
        }
    }
    Ok(())
}
