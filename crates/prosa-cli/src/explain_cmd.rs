//! `prosa explain hidden-states`: what a recurrent model's state does word by word.

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
