//! `prosa explain hidden-states`: what a recurrent model's state does word by word;
//! `prosa explain attention`: where a translator looks while it writes each word.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use prosa::device::DeviceSpec;
use prosa::models::{folder, rnn};

use crate::print_json;

/// `prosa explain …`
#[derive(Subcommand)]
pub enum ExplainCommand {
    /// Heatmap of every hidden dimension after each word, with the prediction after each word.
    HiddenStates(HiddenStatesArgs),
    /// The source × translation alignment of an attention translator (--arch rnn-attention):
    /// Bahdanau et al.'s figure.
    Attention(AttentionArgs),
    /// Redraw a run's learning curves from its history (a model folder or run folder with
    /// history.json).
    LearningCurves(CurvesArgs),
}

/// Flags of `prosa explain learning-curves`.
#[derive(Args)]
pub struct CurvesArgs {
    /// The folder holding history.json (a trained model folder, or its run folder).
    #[arg(long)]
    model: PathBuf,
    /// The PNG to write.
    #[arg(long, default_value = "learning_curves.png")]
    out: PathBuf,
    /// The figure's title.
    #[arg(long, default_value = "Learning curves")]
    title: String,
}

/// Flags of `prosa explain attention`.
#[derive(Args)]
pub struct AttentionArgs {
    /// A translator folder trained with --arch rnn-attention.
    #[arg(long)]
    model: PathBuf,
    /// The source text.
    text: String,
    /// The PNG to write.
    #[arg(long, default_value = "attention.png")]
    out: PathBuf,
    /// Tokens to generate at most.
    #[arg(long, default_value_t = 40)]
    max_new_tokens: usize,
    /// Print the tokens and weights as JSON as well.
    #[arg(long)]
    json: bool,
}

/// `prosa explain attention`.
fn attention(a: AttentionArgs, device: DeviceSpec) -> anyhow::Result<()> {
    use prosa::models::seq2seq::rnn::RnnTranslator;
    use prosa::models::seq2seq::Translator;
    let kind = folder::model_type(&a.model)?;
    if kind != prosa::models::seq2seq::rnn::MODEL_TYPE {
        anyhow::bail!(
            "{}: alignments come from an RNN translator with attention ({}), this one is {kind}",
            a.model.display(),
            prosa::models::seq2seq::rnn::MODEL_TYPE
        );
    }
    let model = RnnTranslator::from_pretrained(&a.model, &device.open()?)?;
    let source = model.encode_source(&a.text)?;
    let Some((tokens, weights)) = model.alignment(&source, a.max_new_tokens)? else {
        anyhow::bail!(
            "{}: this translator has no attention (trained with --arch rnn)",
            a.model.display()
        );
    };
    let piece = |id: u32| {
        let text = model.tokenizer.decode(&[id], false).unwrap_or_default();
        let text = text.trim().to_string();
        if text.is_empty() {
            model.tokenizer.id_to_token(id).unwrap_or_default()
        } else {
            text
        }
    };
    let source_tokens: Vec<String> = source.iter().map(|&id| piece(id)).collect();
    let target_tokens: Vec<String> = tokens.iter().map(|&id| piece(id)).collect();
    prosa::report::alignment_png(
        &source_tokens,
        &target_tokens,
        &weights,
        &format!("Attention: {}", a.text),
        &a.out,
    )?;
    if a.json {
        return print_json(&serde_json::json!({
            "source": source_tokens, "target": target_tokens, "weights": weights, "figure": a.out
        }));
    }
    println!("{}", model.tokenizer.decode(&tokens, true)?);
    println!("alignment: {}", a.out.display());
    Ok(())
}

/// Flags of `prosa explain hidden-states`.
#[derive(Args)]
pub struct HiddenStatesArgs {
    /// A recurrent model folder (trained with --arch rnn, lstm or gru).
    #[arg(long)]
    model: PathBuf,
    /// The text to read.
    text: String,
    /// The PNG to write.
    #[arg(long, default_value = "hidden_states.png")]
    out: PathBuf,
    /// Print the numbers as JSON (tokens, states, outputs) as well.
    #[arg(long)]
    json: bool,
}

/// Runs a `prosa explain` command.
pub fn run(cmd: ExplainCommand, device: DeviceSpec) -> anyhow::Result<()> {
    match cmd {
        ExplainCommand::Attention(a) => attention(a, device),
        ExplainCommand::LearningCurves(a) => {
            let history = prosa::train::History::load(&a.model)?;
            prosa::report::learning_curves_png(&history, &a.title, &a.out)?;
            println!("learning curves: {}", a.out.display());
            Ok(())
        }
        ExplainCommand::HiddenStates(a) => {
            let kind = folder::model_type(&a.model)?;
            if kind != rnn::MODEL_TYPE {
                anyhow::bail!(
                    "{}: hidden states need a recurrent model ({}), this one is {kind}",
                    a.model.display(),
                    rnn::MODEL_TYPE
                );
            }
            let model = rnn::RnnClassifier::load(&a.model, &device.open()?)?;
            let states = model.hidden_states(&a.text)?;
            let cell = format!("{:?}", model.config().cell).to_uppercase();
            prosa::report::hidden_states_png(
                &states,
                &format!("{cell} hidden state, word by word"),
                &a.out,
            )?;
            if a.json {
                print_json(&states)?;
            } else {
                for (token, p) in states.tokens.iter().zip(&states.outputs) {
                    let shown: Vec<String> = states
                        .labels
                        .iter()
                        .zip(p)
                        .map(|(l, v)| format!("{l} {v:.3}"))
                        .collect();
                    println!("{token:<16} {}", shown.join("  "));
                }
                println!("wrote {}", a.out.display());
            }
            Ok(())
        }
    }
}
