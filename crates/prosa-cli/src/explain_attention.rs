//! `prosa explain attention`: where a model looks. For an RNN translator with attention, the
//! source × translation alignment (Bahdanau et al.'s figure); for Transformers — the
//! translator, the Transformer classifier, BERT-family encoders, GPT-2/Llama decoders — a grid of every head of every
//! layer, or one head with its tokens (`--layer L --head H`).

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use prosa::device::DeviceSpec;
use prosa::models::attention_maps::{self, AttentionMaps};
use prosa::models::decoder::DecoderModel;
use prosa::models::encoder::EncoderModel;
use prosa::models::folder;
use prosa::models::seq2seq::rnn::{self, RnnTranslator};
use prosa::models::seq2seq::translator::{self, TransformerTranslator};
use prosa::models::seq2seq::Translator;
use prosa::models::transformer_classifier::{self, TransformerClassifier};

use crate::print_json;

/// Which attention of a Transformer translator to show.
#[derive(Clone, Copy, ValueEnum, PartialEq, Eq, Debug)]
pub enum Stack {
    /// Decoder queries over the source (the alignment).
    Cross,
    /// The encoder's self-attention over the source.
    Encoder,
    /// The decoder's causal self-attention over what it wrote.
    Decoder,
}

/// Flags of `prosa explain attention`.
#[derive(Args)]
pub struct AttentionArgs {
    /// A model folder: a translator (--arch rnn-attention or transformer), a Transformer
    /// classifier (--arch transformer), a BERT, DistilBERT or RoBERTa folder, or a GPT-2 /
    /// Llama folder or `.gguf` file.
    #[arg(long)]
    model: PathBuf,
    /// The text (the source, for a translator).
    text: String,
    /// The PNG to write.
    #[arg(long, default_value = "attention.png")]
    out: PathBuf,
    /// Tokens to generate at most (translators).
    #[arg(long, default_value_t = 40)]
    max_new_tokens: usize,
    /// Only this layer (0 = the first; with --head, one head's map with its tokens).
    #[arg(long)]
    layer: Option<usize>,
    /// One head of --layer (0 = the first).
    #[arg(long, requires = "layer")]
    head: Option<usize>,
    /// Which attention of a Transformer translator: cross (default), encoder or decoder.
    #[arg(long, value_enum)]
    attention: Option<Stack>,
    /// Print the tokens and weights as JSON as well.
    #[arg(long)]
    json: bool,
}

/// `prosa explain attention`.
pub fn run(a: AttentionArgs, device: DeviceSpec) -> anyhow::Result<()> {
    let gguf = a
        .model
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("gguf"));
    let kind = if gguf {
        "gguf".to_string()
    } else {
        folder::model_type(&a.model)?
    };
    let device = device.open()?;
    if a.attention.is_some() && kind != translator::MODEL_TYPE {
        anyhow::bail!(
            "--attention picks a stack of a Transformer translator ({}); {} is {kind}",
            translator::MODEL_TYPE,
            a.model.display()
        );
    }
    let (maps, what, translation) = match kind.as_str() {
        rnn::MODEL_TYPE => {
            return rnn_alignment(&a, RnnTranslator::from_pretrained(&a.model, &device)?)
        }
        translator::MODEL_TYPE => {
            let model = TransformerTranslator::from_pretrained(&a.model, &device)?;
            let all = model.attention(&a.text, a.max_new_tokens)?;
            let translation = model.tokenizer.decode(&all.generated, true)?;
            let stack = a.attention.unwrap_or(Stack::Cross);
            let (maps, what) = match stack {
                Stack::Cross => (
                    all.cross,
                    "cross-attention: rows the translation, columns the source",
                ),
                Stack::Encoder => (all.encoder, "encoder self-attention over the source"),
                Stack::Decoder => (
                    all.decoder,
                    "decoder self-attention: rows what it wrote, columns what it read",
                ),
            };
            (maps, what, Some(translation))
        }
        transformer_classifier::MODEL_TYPE => {
            let model = TransformerClassifier::load(&a.model, &device)?;
            let what = "self-attention over the words the classifier knows";
            (model.attention(&a.text)?, what, None)
        }
        "bert" | "distilbert" | "roberta" => {
            let model = EncoderModel::from_pretrained(&a.model, None, None, &device)?;
            let what = "self-attention: rows the queries, columns the keys";
            (
                attention_maps::encoder_attention(&model, &a.text)?,
                what,
                None,
            )
        }
        _ => {
            let model = DecoderModel::from_pretrained(&a.model, &device)?;
            let what = "causal self-attention: each token sees itself and the tokens before it";
            (
                attention_maps::decoder_attention(&model, &a.text)?,
                what,
                None,
            )
        }
    };
    draw(&a, &maps, what)?;
    if a.json {
        return print_json(&json_of(&a, &maps, translation.as_deref())?);
    }
    if let Some(t) = translation {
        println!("{t}");
    }
    println!("attention: {}", a.out.display());
    Ok(())
}

/// The grid of all layers (or one layer's heads), or one head with its tokens.
fn draw(a: &AttentionArgs, maps: &AttentionMaps, what: &str) -> anyhow::Result<()> {
    let title = format!("Attention: {}", a.text);
    match (a.layer, a.head) {
        (Some(layer), Some(head)) => prosa::report::alignment_png(
            &maps.keys,
            &maps.queries,
            maps.head(layer, head)?,
            &format!("Layer {layer}, head {head}: {}", a.text),
            &a.out,
        )?,
        (Some(layer), None) => {
            maps.head(layer, 0)?;
            prosa::report::attention_grid_png(
                std::slice::from_ref(&maps.layers[layer]),
                layer,
                &title,
                &format!("layer {layer}, {what}"),
                &a.out,
            )?
        }
        _ => prosa::report::attention_grid_png(&maps.layers, 0, &title, what, &a.out)?,
    }
    Ok(())
}

/// The weights as JSON: every layer, one layer, or one head.
fn json_of(
    a: &AttentionArgs,
    maps: &AttentionMaps,
    translation: Option<&str>,
) -> anyhow::Result<serde_json::Value> {
    let mut out = serde_json::json!({
        "queries": maps.queries, "keys": maps.keys, "figure": a.out,
    });
    match (a.layer, a.head) {
        (Some(layer), Some(head)) => {
            out["layer"] = layer.into();
            out["head"] = head.into();
            out["weights"] = serde_json::to_value(maps.head(layer, head)?)?;
        }
        (Some(layer), None) => {
            out["layer"] = layer.into();
            out["heads"] = serde_json::to_value(&maps.layers[layer])?;
        }
        _ => out["layers"] = serde_json::to_value(&maps.layers)?,
    }
    if let Some(t) = translation {
        out["translation"] = t.into();
    }
    Ok(out)
}

/// The alignment of an RNN translator with attention.
fn rnn_alignment(a: &AttentionArgs, model: RnnTranslator) -> anyhow::Result<()> {
    if a.layer.is_some() {
        anyhow::bail!(
            "{}: an RNN translator has one attention, not layers and heads (drop --layer/--head)",
            a.model.display()
        );
    }
    let source = model.encode_source(&a.text)?;
    let Some((tokens, weights)) = model.alignment(&source, a.max_new_tokens)? else {
        anyhow::bail!(
            "{}: this translator has no attention (trained with --arch rnn)",
            a.model.display()
        );
    };
    let source_tokens = attention_maps::token_labels(&model.tokenizer, &source);
    let target_tokens = attention_maps::token_labels(&model.tokenizer, &tokens);
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
