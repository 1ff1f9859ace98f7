//! `prosa translate --model DIR [--num-beams B] TEXT… | --input FILE`: translations with a
//! translator folder, one per line (or JSON in the translation pipeline's shape).

use std::path::PathBuf;

use clap::Args;
use prosa::device::DeviceSpec;
use prosa::pipelines::Translation;

use crate::print_json;

/// Flags of `prosa translate`.
#[derive(Args)]
pub struct TranslateArgs {
    /// A translator folder (`prosa train --task translation`).
    #[arg(long)]
    model: PathBuf,
    /// Beam search with B beams (1: greedy).
    #[arg(long, default_value_t = 1)]
    num_beams: usize,
    /// Beam search: the exponent of the length normalisation (> 1 favours longer translations)
    /// [default: the folder's generation_config.json, else 1.0].
    #[arg(long)]
    length_penalty: Option<f32>,
    /// New tokens per translation at most [default: twice the source, plus 10].
    #[arg(long)]
    max_new_tokens: Option<usize>,
    /// Read texts from a file, one per line (besides any given as arguments).
    #[arg(long)]
    input: Option<PathBuf>,
    /// Print JSON ([{"translation_text": …}, …]).
    #[arg(long)]
    json: bool,
    /// The texts.
    texts: Vec<String>,
}

/// Runs `prosa translate`.
pub fn run(a: TranslateArgs, device: DeviceSpec) -> anyhow::Result<()> {
    if a.num_beams == 0 {
        anyhow::bail!("--num-beams must be at least 1");
    }
    let texts = crate::read_args::texts_and_lines(&a.texts, a.input.as_deref())?;
    let pipeline = Translation::from_pretrained(&a.model, &device.open()?)?;
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let out = pipeline.run(&refs, a.num_beams, a.length_penalty, a.max_new_tokens)?;
    if a.json {
        return print_json(&out);
    }
    for t in out {
        println!("{}", t.translation_text);
    }
    Ok(())
}
