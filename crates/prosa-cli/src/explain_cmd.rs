//! `prosa explain hidden-states`: what a recurrent model's state does word by word;
//! `prosa explain attention` (in `explain_attention`): where a model looks;
//! `prosa explain learning-curves`: a run's curves redrawn;
//! `prosa explain elmo` (in `explain_elmo`): one word's vectors in different contexts.

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
    /// Where a model looks: the source × translation alignment of an RNN translator with
    /// attention (Bahdanau et al.'s figure), or every head of every layer of a Transformer
    /// (translator, BERT family, GPT-2/Llama); one head with --layer L --head H.
    Attention(crate::explain_attention::AttentionArgs),
    /// Redraw a run's learning curves from its history (a model folder or run folder with
    /// history.json).
    LearningCurves(CurvesArgs),
    /// One word's ELMo vectors in different sentences: how alike they are, and their nearest
    /// words in context.
    Elmo(crate::explain_elmo::ElmoArgs),
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
        ExplainCommand::Attention(a) => crate::explain_attention::run(a, device),
        ExplainCommand::Elmo(a) => crate::explain_elmo::run(a, device),
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
