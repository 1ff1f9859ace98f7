//! `prosa generate`: text from a decoder (a Hugging Face folder or a GGUF file), streamed as it
//! is made; `--grid` reproduces the course notebook's temperature × top-p table; and
//! `prosa perplexity`.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use prosa::device::DeviceSpec;
use prosa::generation::{generate, EarlyStopping, GenerationConfig, TextStreamer};
use prosa::models::decoder::lm::perplexity;
use prosa::models::decoder::DecoderModel;
use serde::Serialize;

use crate::print_json;

/// The generation settings shared by `prosa generate` and the text-generation pipeline. Unset
/// flags keep the model's `generation_config.json` (or transformers' defaults).
#[derive(Args, Debug, Default, Clone)]
pub struct GenerationFlags {
    /// New tokens at most.
    #[arg(long, help_heading = "Generation")]
    pub(crate) max_new_tokens: Option<usize>,
    /// New tokens before an end token is allowed.
    #[arg(long, help_heading = "Generation")]
    pub(crate) min_new_tokens: Option<usize>,
    /// Always pick the most likely token (overrides the sampling flags).
    #[arg(long, help_heading = "Generation")]
    pub(crate) greedy: bool,
    /// Sample with this temperature (implies sampling).
    #[arg(long, help_heading = "Generation")]
    pub(crate) temperature: Option<f32>,
    /// Sample among the K most likely tokens (implies sampling; 0 turns it off) [default: 50].
    #[arg(long, help_heading = "Generation")]
    pub(crate) top_k: Option<usize>,
    /// Sample among the most likely tokens whose probability reaches P, in (0, 1] (implies sampling).
    #[arg(long, help_heading = "Generation")]
    pub(crate) top_p: Option<f32>,
    /// Seed of the sampling.
    #[arg(long, help_heading = "Generation")]
    pub(crate) seed: Option<u64>,
    /// Beam search with B beams.
    #[arg(long, help_heading = "Generation")]
    pub(crate) num_beams: Option<usize>,
    /// Beam search: exponent of the length normalisation.
    #[arg(long, help_heading = "Generation")]
    pub(crate) length_penalty: Option<f32>,
    /// Beam search: stop as soon as B candidates are finished.
    #[arg(long, help_heading = "Generation")]
    pub(crate) early_stopping: bool,
    /// Sequences per prompt (beams or samples).
    #[arg(long, help_heading = "Generation")]
    pub(crate) num_return_sequences: Option<usize>,
    /// No n-gram of this size appears twice.
    #[arg(long, help_heading = "Generation")]
    pub(crate) no_repeat_ngram_size: Option<usize>,
    /// > 1 discourages tokens already in the text.
    #[arg(long, help_heading = "Generation")]
    pub(crate) repetition_penalty: Option<f32>,
    /// Stop when the new text contains this string (repeatable).
    #[arg(long = "stop", help_heading = "Generation")]
    pub(crate) stop_strings: Vec<String>,
    /// Wrap the prompt in the model's chat template as a user turn.
    #[arg(long, help_heading = "Generation")]
    pub(crate) chat: bool,
}

impl GenerationFlags {
    /// The settings: the model's defaults with the flags on top.
    pub fn config(&self, base: &GenerationConfig) -> GenerationConfig {
        let mut g = base.clone();
        if let Some(n) = self.max_new_tokens {
            g.max_new_tokens = Some(n);
        } else if g.max_new_tokens.is_none() {
            g.max_new_tokens = Some(50);
        }
        if let Some(n) = self.min_new_tokens {
            g.min_new_tokens = n;
        }
        let sampling = self.temperature.is_some() || self.top_k.is_some() || self.top_p.is_some();
        if sampling {
            g.do_sample = true;
        }
        if self.greedy {
            g.do_sample = false;
        }
        if let Some(t) = self.temperature {
            g.temperature = t;
        }
        if let Some(k) = self.top_k {
            g.top_k = k;
        }
        if let Some(p) = self.top_p {
            g.top_p = p;
        }
        if let Some(s) = self.seed {
            g.seed = s;
        }
        if let Some(b) = self.num_beams {
            g.num_beams = b;
        }
        if let Some(l) = self.length_penalty {
            g.length_penalty = l;
        }
        if self.early_stopping {
            g.early_stopping = EarlyStopping::Immediately;
        }
        if let Some(n) = self.num_return_sequences {
            g.num_return_sequences = n;
        }
        if let Some(n) = self.no_repeat_ngram_size {
            g.no_repeat_ngram_size = n;
        }
        if let Some(r) = self.repetition_penalty {
            g.repetition_penalty = r;
        }
        if !self.stop_strings.is_empty() {
            g.stop_strings = self.stop_strings.clone();
        }
        g
    }

    /// Whether prompts go through the chat template.
    pub fn chat(&self) -> bool {
        self.chat
    }
}

/// Flags of `prosa generate`.
#[derive(Args)]
pub struct GenerateArgs {
    /// A decoder folder (config.json, model.safetensors, tokenizer.json) or a .gguf file.
    #[arg(long)]
    model: PathBuf,
    /// The prompt.
    #[arg(long)]
    prompt: String,
    /// Print the notebook's grid instead: sampling at temperatures 0.3, 0.7, 1.0 × top-p 0.8,
    /// 0.9, 0.95 (nine generations).
    #[arg(long)]
    grid: bool,
    /// Print JSON (text and token ids).
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    generation: GenerationFlags,
}

/// One generation, for --json.
#[derive(Serialize)]
struct Generated {
    text: String,
    token_ids: Vec<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f32>,
    /// Speed, as llama.cpp reports it (greedy and sampling; beam search has no first token).
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    timings: Option<Timings>,
}

/// Prompt processing and generation speed of one call.
#[derive(Serialize, Clone, Copy)]
struct Timings {
    prompt_tokens: usize,
    prompt_tokens_per_second: f64,
    generated_tokens: usize,
    generated_tokens_per_second: f64,
}

/// Times a generation: the prompt pass ends when the first token arrives.
struct Stopwatch {
    start: std::time::Instant,
    first_token: Option<std::time::Instant>,
}

impl Stopwatch {
    fn start() -> Self {
        Self {
            start: std::time::Instant::now(),
            first_token: None,
        }
    }

    fn token(&mut self) {
        self.first_token.get_or_insert_with(std::time::Instant::now);
    }

    /// The speeds, once `generated` tokens (over all rows) followed a prompt of `prompt` tokens.
    fn timings(&self, prompt: usize, generated: usize) -> Option<Timings> {
        let first = self.first_token?;
        let (prompt_s, rest_s) = (
            (first - self.start).as_secs_f64(),
            first.elapsed().as_secs_f64(),
        );
        Some(Timings {
            prompt_tokens: prompt,
            prompt_tokens_per_second: prompt as f64 / prompt_s.max(1e-9),
            generated_tokens: generated,
            generated_tokens_per_second: generated.saturating_sub(1) as f64 / rest_s.max(1e-9),
        })
    }
}

impl std::fmt::Display for Timings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "prompt: {} tokens, {:.1} tokens/s · generation: {} tokens",
            self.prompt_tokens, self.prompt_tokens_per_second, self.generated_tokens,
        )?;
        // The first token comes with the prompt pass: a rate needs a second one.
        if self.generated_tokens > 1 {
            write!(f, ", {:.1} tokens/s", self.generated_tokens_per_second)?;
        }
        Ok(())
    }
}

/// An encoder–decoder folder (T5, BART, Marian): the prompt is the source.
fn encoder_decoder(a: &GenerateArgs, device: DeviceSpec) -> anyhow::Result<()> {
    use prosa::models::seq2seq::hf::HfEncoderDecoder;
    if a.grid || a.generation.chat() {
        anyhow::bail!(
            "{}: --grid and --chat are for decoder models",
            a.model.display()
        );
    }
    let model = HfEncoderDecoder::from_pretrained(&a.model, &device.open()?)?;
    let g = a.generation.config(model.generation());
    let all = model.generate_texts(&[a.prompt.as_str()], "", &g)?;
    if a.json {
        return print_json(&all);
    }
    for (i, t) in all.iter().enumerate() {
        if all.len() > 1 {
            println!("--- sequence {} ---", i + 1);
        }
        println!("{}", t.text);
    }
    Ok(())
}

/// Runs `prosa generate`.
pub fn run(a: GenerateArgs, device: DeviceSpec) -> anyhow::Result<()> {
    let is_encoder_decoder = a.model.join("config.json").exists()
        && prosa::models::seq2seq::hf::MODEL_TYPES
            .contains(&prosa::models::folder::model_type(&a.model)?.as_str());
    if is_encoder_decoder {
        return encoder_decoder(&a, device);
    }
    let model = DecoderModel::from_pretrained(&a.model, &device.open()?)?;
    let tokenizer = model.tokenizer()?;
    let prompt = model.encode_prompt(&a.prompt, a.generation.chat())?;
    let base = a.generation.config(&model.generation);
    if a.grid {
        let mut all = Vec::new();
        // Each cell draws its own numbers (seed, seed + 1, …), as successive calls after one
        // `set_seed` do in the notebook.
        let cells = [0.3f32, 0.7, 1.0]
            .into_iter()
            .flat_map(|t| [0.8f32, 0.9, 0.95].map(|p| (t, p)));
        for (i, (temperature, top_p)) in cells.enumerate() {
            let g = GenerationConfig {
                do_sample: true,
                temperature,
                top_p,
                seed: base.seed + i as u64,
                ..base.clone()
            };
            let out = generate(&model, std::slice::from_ref(&prompt), &g, None)?;
            let text = tokenizer.decode(&out.new_tokens[0], true)?;
            if !a.json {
                println!("--- temperature={temperature}, top_p={top_p} ---");
                println!("{}{}\n", a.prompt, text);
            }
            all.push(Generated {
                text,
                token_ids: out.new_tokens[0].clone(),
                temperature: Some(temperature),
                top_p: Some(top_p),
                timings: None,
            });
        }
        return if a.json { print_json(&all) } else { Ok(()) };
    }
    // Settings are checked before anything is printed.
    base.validate()?;
    let streams = !a.json && base.num_beams == 1 && base.num_return_sequences == 1;
    let mut stdout = std::io::stdout();
    let mut streamer = TextStreamer::new(tokenizer, true);
    let mut stream_error = None;
    let prompt_tokens = prompt.len();
    let mut watch = Stopwatch::start();
    let mut print = |_: usize, token: u32| {
        watch.token();
        match streamer.push(token) {
            Ok(piece) => {
                print!("{piece}");
                let _ = stdout.flush();
            }
            Err(e) => stream_error = Some(e),
        }
    };
    if streams {
        if !a.generation.chat() {
            print!("{}", a.prompt);
        }
        let out = generate(&model, &[prompt], &base, Some(&mut print))?;
        println!();
        if let Some(e) = stream_error {
            return Err(e.into());
        }
        if out.new_tokens[0].len() == base.max_new_tokens.unwrap_or(usize::MAX) {
            eprintln!("(stopped at --max-new-tokens {})", out.new_tokens[0].len());
        }
        if let Some(t) = watch.timings(prompt_tokens, out.new_tokens[0].len()) {
            eprintln!("{t}");
        }
        return Ok(());
    }
    let mut watch = Stopwatch::start();
    let mut first_token = |_: usize, _: u32| watch.token();
    let callback: Option<prosa::generation::TokenCallback> = if base.num_beams == 1 {
        Some(&mut first_token)
    } else {
        None
    };
    let out = generate(&model, &[prompt], &base, callback)?;
    let generated: usize = out.new_tokens.iter().map(Vec::len).sum();
    let timings = watch.timings(prompt_tokens, generated);
    let all = out
        .new_tokens
        .iter()
        .map(|ids| {
            Ok(Generated {
                text: tokenizer.decode(ids, true)?,
                token_ids: ids.clone(),
                temperature: None,
                top_p: None,
                timings,
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    if a.json {
        return print_json(&all);
    }
    for (i, g) in all.iter().enumerate() {
        if all.len() > 1 {
            println!("--- sequence {} ---", i + 1);
        }
        println!("{}{}", a.prompt, g.text);
    }
    Ok(())
}

/// Flags of `prosa perplexity`.
#[derive(Args)]
pub struct PerplexityArgs {
    /// A decoder folder or a .gguf file.
    #[arg(long)]
    model: PathBuf,
    /// The text file to score.
    #[arg(long)]
    file: PathBuf,
    /// Tokens per window [default: the model's context, at most 1024].
    #[arg(long)]
    max_length: Option<usize>,
    /// Tokens the window moves by; each token is scored once, with up to max-length − 1 tokens
    /// of context [default: max-length / 2].
    #[arg(long)]
    stride: Option<usize>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Runs `prosa perplexity`.
pub fn perplexity_run(a: PerplexityArgs, device: DeviceSpec) -> anyhow::Result<()> {
    let model = DecoderModel::from_pretrained(&a.model, &device.open()?)?;
    let text = std::fs::read_to_string(&a.file)
        .with_context(|| format!("reading {}", a.file.display()))?;
    let ids = model.tokenizer()?.encode(&text, true)?;
    if ids.len() < 2 {
        anyhow::bail!(
            "{}: {} token(s); perplexity needs at least 2",
            a.file.display(),
            ids.len()
        );
    }
    let max_length = a.max_length.unwrap_or(model.config.max_positions.min(1024));
    let stride = a.stride.unwrap_or((max_length / 2).max(1));
    let bar = indicatif::ProgressBar::new(ids.len() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "perplexity {bar:30} {pos}/{len} tokens, {elapsed} elapsed, eta {eta}",
        )
        .expect("a valid template"),
    );
    let result = perplexity(&model, &ids, max_length, stride, Some(&bar))?;
    bar.finish_and_clear();
    if a.json {
        return print_json(&result);
    }
    println!(
        "perplexity {:.3} (mean NLL {:.4} nats) over {} tokens of {}, {} windows of {max_length} tokens with stride {stride}",
        result.perplexity,
        result.mean_nll,
        result.tokens,
        a.file.display(),
        result.windows
    );
    Ok(())
}
