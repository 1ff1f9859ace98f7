//! `prosa explain elmo`: one word's ELMo vectors in different sentences — how alike its
//! occurrences are at the chosen layer (and at the context-free token layer, where they are
//! all the same), and the nearest words in context to each occurrence.

use std::path::PathBuf;

use clap::Args;
use prosa::device::DeviceSpec;
use prosa::models::elmo::{words, ElmoBiLm};

use crate::print_json;

/// Flags of `prosa explain elmo`.
#[derive(Args)]
pub struct ElmoArgs {
    /// An ELMo folder (`prosa pretrain --arch elmo`).
    #[arg(long)]
    model: PathBuf,
    /// The word to follow (as written).
    #[arg(long)]
    word: String,
    /// Sentences containing the word, and others whose words are candidate neighbours.
    #[arg(long = "sentence", required = true, num_args = 1..)]
    sentences: Vec<String>,
    /// The layer compared: 0 is the character CNN's (context-free), 1.. the biLSTM layers.
    #[arg(long)]
    layer: Option<usize>,
    /// Neighbours per occurrence.
    #[arg(short, long, default_value_t = 5)]
    k: usize,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Runs `prosa explain elmo`.
pub fn run(a: ElmoArgs, device: DeviceSpec) -> anyhow::Result<()> {
    let model = ElmoBiLm::from_pretrained(&a.model, &device.open()?)?;
    let layer = a.layer.unwrap_or(model.config().num_layers);
    let sentences: Vec<Vec<String>> = a.sentences.iter().map(|s| words(s)).collect();
    let report = model.word_in_contexts(&sentences, &a.word, layer, a.k)?;
    if a.json {
        return print_json(&report);
    }
    println!("'{}' at layer {layer} (0 = context-free):", report.word);
    for (i, o) in report.occurrences.iter().enumerate() {
        println!("\n[{i}] {}", a.sentences[o.sentence]);
        for n in &o.neighbours {
            println!(
                "      {:<16} {:.3}   (sentence {})",
                n.word, n.similarity, n.sentence
            );
        }
    }
    println!("\ncosine similarity between the occurrences (layer {layer} | layer 0):");
    for (i, (row, tokens)) in report
        .similarities
        .iter()
        .zip(&report.token_layer_similarities)
        .enumerate()
    {
        let cells: Vec<String> = row
            .iter()
            .zip(tokens)
            .map(|(s, t)| format!("{s:.3} | {t:.3}"))
            .collect();
        println!("  [{i}] {}", cells.join("   "));
    }
    Ok(())
}
