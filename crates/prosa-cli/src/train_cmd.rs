//! `prosa train`: an experiment from a TOML file and/or flags (flags win) over the task's
//! defaults, which the library holds ([`Experiment::defaults`]); this file only maps flags.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use prosa::data::{Balance, Encoding, Format};
use prosa::device::DeviceSpec;
use prosa::models::rnn::Pooling;
use prosa::tasks::{ClassWeight, Experiment, TaskKind};
use prosa::text::Weighting;
use prosa::train::{EvalStrategy, OptimizerKind, ScheduleKind};

/// Flags of `prosa train`. Every flag is optional: unset flags keep the value of the TOML file
/// given with `--config`, or the default.
#[derive(Args, Debug, Default)]
pub struct TrainArgs {
    /// TOML experiment file with [data], [model] and [training] tables (see docs/experiment.toml).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Continue from OUTPUT_DIR/checkpoint-last (after a crash or a kill).
    #[arg(long)]
    resume: bool,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
    /// What to learn: sequence-classification (one label per text, from CSV/TSV/JSONL) or
    /// token-classification (one tag per word, from CoNLL files; needs --arch bert
    /// --pretrained DIR --data TRAIN --test-data TEST) or causal-lm (next-token prediction on
    /// the text files of --data: a GPT-2 from scratch, or --pretrained DECODER fine-tuned).
    /// [default: sequence-classification, or the config file's `task`]
    #[arg(long)]
    task: Option<TrainTask>,

    // ---- data
    /// Data file (CSV, TSV, JSONL). Default: the embedded tweet-sentiment corpus.
    #[arg(long, help_heading = "Data")]
    data: Option<PathBuf>,
    /// A separate test file (same layout as --data): no test split is cut from --data.
    #[arg(long, help_heading = "Data")]
    test_data: Option<PathBuf>,
    /// File layout: auto, csv, tsv, jsonl.
    #[arg(long, help_heading = "Data")]
    format: Option<Format>,
    /// Text encoding: utf-8 or latin-1.
    #[arg(long, help_heading = "Data")]
    encoding: Option<Encoding>,
    /// Column holding the text [default: text].
    #[arg(long, help_heading = "Data")]
    text_column: Option<String>,
    /// Column holding the label [default: label].
    #[arg(long, help_heading = "Data")]
    label_column: Option<String>,
    /// Use a seeded random subset of this many rows.
    #[arg(long, help_heading = "Data")]
    max_rows: Option<usize>,
    /// Fraction held out as the test split [default: 0.2].
    #[arg(long, help_heading = "Data")]
    test_size: Option<f64>,
    /// Split without keeping class proportions.
    #[arg(long, help_heading = "Data")]
    no_stratify: bool,
    /// Fraction of the training split used for validation during training [default: 0.1].
    #[arg(long, help_heading = "Data")]
    validation_split: Option<f64>,
    /// Balance the training classes: over or under.
    #[arg(long, help_heading = "Data")]
    balance: Option<Balance>,

    // ---- model
    /// Architecture: bow (bag-of-words logistic regression / MLP), rnn (Elman), lstm, gru,
    /// bert (fine-tune the BERT/DistilBERT/RoBERTa folder given with --pretrained), elmo
    /// (frozen ELMo features of the biLM folder given with --pretrained, mixed and classified),
    /// or ulmfit (the AWD-LSTM language model given with --pretrained, fine-tuned on the texts,
    /// then a classifier with gradual unfreezing).
    #[arg(long, help_heading = "Model")]
    arch: Option<String>,
    /// Encoder: the Hugging Face model folder to fine-tune (config.json, model.safetensors, tokenizer).
    #[arg(long, help_heading = "Model")]
    pretrained: Option<PathBuf>,
    /// With --pretrained: keep the folder's config and tokenizer, draw new weights (the same
    /// model from scratch, to measure what pretraining brings).
    #[arg(long, help_heading = "Model")]
    reinitialize: bool,
    /// Encoder: freeze the embeddings and the lower N layers.
    #[arg(long, help_heading = "Model")]
    freeze_layers: Option<usize>,
    /// Encoder: freeze the whole encoder and train only the classification head.
    #[arg(long, help_heading = "Model")]
    freeze_encoder: bool,
    /// Encoder: cut texts to this many subword tokens [default: 128].
    #[arg(long, help_heading = "Model")]
    max_tokens: Option<usize>,
    /// Causal LM, translation: attention heads [default: 4].
    #[arg(long, help_heading = "Model")]
    heads: Option<usize>,
    /// Translation: label smoothing of the loss [default: 0.1].
    #[arg(long, help_heading = "Model")]
    label_smoothing: Option<f32>,
    /// Translation: pre-LN Transformer layers instead of the paper's post-LN.
    #[arg(long, help_heading = "Model")]
    norm_first: bool,
    /// Translation with --arch rnn-attention: additive (Bahdanau), dot or general (Luong)
    /// [default: additive].
    #[arg(long, help_heading = "Model")]
    attention: Option<prosa::nn::additive_attention::Score>,
    /// Causal LM: tokens per training block, the model's context when trained from scratch [default: 128].
    #[arg(long, help_heading = "Model")]
    block_size: Option<usize>,
    /// Causal LM: byte-level BPE vocabulary trained from scratch [default: 8000].
    #[arg(long, help_heading = "Model")]
    vocab_size: Option<usize>,
    /// ULMFiT: epochs of language-model fine-tuning on the training texts (0: skip) [default: 1].
    #[arg(long, help_heading = "ULMFiT")]
    lm_epochs: Option<usize>,
    /// ULMFiT: train every layer from the start (the ablation of gradual unfreezing).
    #[arg(long, help_heading = "ULMFiT")]
    no_gradual_unfreezing: bool,
    /// ULMFiT: one learning rate for every layer (the ablation of discriminative rates).
    #[arg(long, help_heading = "ULMFiT")]
    no_discriminative_lr: bool,
    /// ULMFiT: multiplies fastai's dropouts [default: 0.5].
    #[arg(long, help_heading = "ULMFiT")]
    drop_mult: Option<f32>,
    /// Causal LM: the prompt of the samples written at the end [default: ROMEO:].
    #[arg(long, help_heading = "Model")]
    sample_prompt: Option<String>,
    /// Causal LM: temperatures of the samples [default: 0.5,0.8,1.0,1.3].
    #[arg(long, value_delimiter = ',', help_heading = "Model")]
    temperatures: Vec<f32>,
    /// Recurrent: stacked layers [default: 1]; causal LM: blocks [default: 4].
    #[arg(long, help_heading = "Model")]
    layers: Option<usize>,
    /// Recurrent: read the text in both directions.
    #[arg(long, help_heading = "Model")]
    bidirectional: bool,
    /// Recurrent: pretrained word vectors (word2vec text/binary, GloVe text, or .npy with --vectors-index).
    #[arg(long, help_heading = "Model")]
    vectors: Option<PathBuf>,
    /// Recurrent: word index of a .npy vectors file (parquet or one word per line).
    #[arg(long, help_heading = "Model")]
    vectors_index: Option<PathBuf>,
    /// Recurrent: keep the embeddings fixed during training.
    #[arg(long, help_heading = "Model")]
    freeze_embeddings: bool,
    /// Recurrent: pad or cut texts to this many words (pre, as Keras) [default: 30].
    #[arg(long, help_heading = "Model")]
    max_len: Option<usize>,
    /// Recurrent: embedding width without --vectors [default: 100].
    #[arg(long, help_heading = "Model")]
    embedding_dim: Option<usize>,
    /// Recurrent: last, mean or max over the states [default: last].
    #[arg(long, help_heading = "Model")]
    pooling: Option<Pooling>,
    /// Recurrent: keep the N-1 most frequent words (Keras' num_words).
    #[arg(long, help_heading = "Model")]
    num_words: Option<usize>,
    /// Bag-of-words values: counts, binary or tfidf [default: tfidf].
    #[arg(long, help_heading = "Model")]
    features: Option<Weighting>,
    /// Largest n-gram size (n-grams 1..=N) [default: 2].
    #[arg(long, help_heading = "Model")]
    ngram_max: Option<usize>,
    /// Keep terms seen in at least this many texts [default: 2].
    #[arg(long, help_heading = "Model")]
    min_df: Option<usize>,
    /// Keep at most this many terms [default: 50000].
    #[arg(long, help_heading = "Model")]
    max_features: Option<usize>,
    /// Hidden units: bow MLP (0 is logistic regression) or recurrent state [default: 0; recurrent 64].
    #[arg(long, help_heading = "Model")]
    hidden: Option<usize>,
    /// Dropout on the hidden layer.
    #[arg(long, help_heading = "Model")]
    dropout: Option<f32>,
    /// Class weights of the loss: none or balanced [default: balanced].
    #[arg(long, help_heading = "Model")]
    class_weight: Option<ClassWeight>,

    // ---- training
    /// Folder for checkpoints, history, model and plots.
    #[arg(long, help_heading = "Training")]
    output_dir: Option<PathBuf>,
    /// Passes over the training data.
    #[arg(long, help_heading = "Training")]
    epochs: Option<usize>,
    /// Training batch size.
    #[arg(long, help_heading = "Training")]
    batch_size: Option<usize>,
    /// Evaluation batch size.
    #[arg(long, help_heading = "Training")]
    eval_batch_size: Option<usize>,
    /// Peak learning rate.
    #[arg(long, help_heading = "Training")]
    lr: Option<f64>,
    /// Weight decay (decoupled for adamw, L2 for adam and sgd).
    #[arg(long, help_heading = "Training")]
    weight_decay: Option<f64>,
    /// Optimizer: adamw, adam or sgd.
    #[arg(long, help_heading = "Training")]
    optimizer: Option<OptimizerKind>,
    /// SGD momentum.
    #[arg(long, help_heading = "Training")]
    momentum: Option<f64>,
    /// Learning-rate schedule: constant, linear, cosine or slanted_triangular.
    #[arg(long, help_heading = "Training")]
    scheduler: Option<ScheduleKind>,
    /// Warmup as a fraction of all steps.
    #[arg(long, help_heading = "Training")]
    warmup_ratio: Option<f64>,
    /// Warmup steps (overrides --warmup-ratio).
    #[arg(long, help_heading = "Training")]
    warmup_steps: Option<usize>,
    /// Micro-batches accumulated per update.
    #[arg(long, help_heading = "Training")]
    grad_accum: Option<usize>,
    /// Batch examples of similar length together, as transformers' group_by_length: less
    /// padding, faster epochs (translation, --arch transformer).
    #[arg(long, help_heading = "Training")]
    group_by_length: bool,
    /// Clip the gradient norm (0 disables).
    #[arg(long, help_heading = "Training")]
    max_grad_norm: Option<f64>,
    /// Evaluate (and checkpoint) every N steps instead of every epoch.
    #[arg(long, help_heading = "Training")]
    eval_steps: Option<usize>,
    /// Print the running loss every N steps.
    #[arg(long, help_heading = "Training")]
    logging_steps: Option<usize>,
    /// Metric for the best checkpoint and early stopping: loss, accuracy, macro_f1, weighted_f1.
    #[arg(long, help_heading = "Training")]
    metric: Option<String>,
    /// Stop after N evaluations without improvement (0: never stop early) [default: 2].
    #[arg(long, help_heading = "Training")]
    patience: Option<usize>,
    /// Keep the last weights instead of restoring the best at the end.
    #[arg(long, help_heading = "Training")]
    keep_last: bool,
    /// Seed of everything random.
    #[arg(long, help_heading = "Training")]
    seed: Option<u64>,
    /// Hide the progress bar.
    #[arg(long, help_heading = "Training")]
    no_progress: bool,
}

/// The defaults of `prosa train` without a config file: the bag-of-words baseline on the tweets.
pub(crate) fn default_experiment() -> Experiment {
    Experiment::defaults(TaskKind::SequenceClassification, false)
}

fn set<T>(slot: &mut T, value: Option<T>) {
    if let Some(v) = value {
        *slot = v;
    }
}

impl TrainArgs {
    /// The experiment: the task's defaults, overridden by the TOML file, overridden by flags.
    pub(crate) fn experiment(&self, device: DeviceSpec) -> anyhow::Result<Experiment> {
        let overlay: Option<toml::Value> = match &self.config {
            Some(path) => {
                let text = prosa::fsio::read_text(path)?;
                Some(
                    toml::from_str(&text)
                        .with_context(|| format!("{}: invalid TOML", path.display()))?,
                )
            }
            None => None,
        };
        let from_file = |section: &str, key: &str| {
            overlay
                .as_ref()
                .and_then(|o| o.get(section))
                .and_then(|s| s.get(key))
                .is_some()
        };
        let task = match (self.task, overlay.as_ref().and_then(|o| o.get("task"))) {
            (Some(t), _) => t.kind(),
            (None, Some(t)) => t
                .as_str()
                .unwrap_or_default()
                .parse()
                .with_context(|| "the config file's task")?,
            (None, None) => TaskKind::SequenceClassification,
        };
        let fine_tuning = self.pretrained.is_some() || from_file("model", "pretrained");
        let mut base = toml::Value::try_from(Experiment::defaults(task, fine_tuning))?;
        if let Some(overlay) = overlay.clone() {
            merge(&mut base, overlay);
        }
        if let toml::Value::Table(t) = &mut base {
            t.insert("task".into(), toml::Value::String(task.name().into()));
        }
        let mut e: Experiment = base.try_into().with_context(|| {
            format!(
                "{}: invalid experiment",
                self.config
                    .as_deref()
                    .unwrap_or(std::path::Path::new("flags"))
                    .display()
            )
        })?;
        if let (Some(overlay), Some(path)) = (&overlay, &self.config) {
            // Every key of the file must be a setting: read back what was understood and name
            // the first key that is not there (a typo would otherwise be ignored silently).
            let understood = toml::Value::try_from(&e)?;
            if let Some(key) = unknown_keys(overlay, &understood, "").first() {
                anyhow::bail!(
                    "{}: unknown setting '{key}' (see docs/experiment.toml for every setting)",
                    path.display()
                );
            }
        }
        e.training.device = device;
        let d = &mut e.data;
        if self.data.is_some() {
            d.path = self.data.clone();
        }
        if self.test_data.is_some() {
            d.test_path = self.test_data.clone();
        }
        set(&mut d.read.format, self.format);
        set(&mut d.read.encoding, self.encoding);
        set(&mut d.read.text_column, self.text_column.clone());
        if self.label_column.is_some() {
            d.read.label_column = self.label_column.clone();
        }
        if self.max_rows.is_some() {
            d.max_rows = self.max_rows;
        }
        set(&mut d.test_size, self.test_size);
        if self.no_stratify {
            d.stratify = false;
        }
        set(&mut d.validation_split, self.validation_split);
        if self.balance.is_some() {
            d.balance = self.balance;
        }
        let m = &mut e.model;
        set(&mut m.arch, self.arch.clone());
        if self.pretrained.is_some() {
            m.pretrained = self.pretrained.clone();
        }
        if self.freeze_layers.is_some() {
            m.freeze_layers = self.freeze_layers;
        }
        if self.freeze_encoder {
            m.freeze_encoder = true;
        }
        set(&mut m.max_tokens, self.max_tokens);
        set(&mut m.vectorizer.weighting, self.features);
        if let Some(n) = self.ngram_max {
            m.vectorizer.ngram_range = (1, n);
        }
        set(&mut m.vectorizer.min_df, self.min_df);
        if self.max_features.is_some() {
            m.vectorizer.max_features = self.max_features;
        }
        set(&mut m.hidden_size, self.hidden);
        set(&mut m.num_layers, self.layers);
        if self.bidirectional {
            m.bidirectional = true;
        }
        if self.vectors.is_some() {
            m.vectors = self.vectors.clone();
        }
        if self.vectors_index.is_some() {
            m.vectors_index = self.vectors_index.clone();
        }
        if self.freeze_embeddings {
            m.freeze_embeddings = true;
        }
        set(&mut m.max_len, self.max_len);
        set(&mut m.embedding_dim, self.embedding_dim);
        set(&mut m.pooling, self.pooling);
        if self.num_words.is_some() {
            m.num_words = self.num_words;
        }
        set(&mut m.dropout, self.dropout);
        set(&mut m.class_weight, self.class_weight);
        set(&mut m.num_heads, self.heads);
        set(&mut m.label_smoothing, self.label_smoothing);
        set(&mut m.attention, self.attention);
        if self.reinitialize {
            m.reinitialize = true;
        }
        if self.norm_first {
            m.norm_first = true;
        }
        set(&mut m.block_size, self.block_size);
        set(&mut m.vocab_size, self.vocab_size);
        set(&mut m.ulmfit.lm_epochs, self.lm_epochs);
        set(&mut m.ulmfit.drop_mult, self.drop_mult);
        if self.no_gradual_unfreezing {
            m.ulmfit.gradual_unfreezing = false;
        }
        if self.no_discriminative_lr {
            m.ulmfit.discriminative_lr = false;
        }
        let samples = &mut e.samples;
        set(&mut samples.prompt, self.sample_prompt.clone());
        if !self.temperatures.is_empty() {
            samples.temperatures = self.temperatures.clone();
        }
        let t = &mut e.training;
        set(&mut t.output_dir, self.output_dir.clone());
        set(&mut t.num_train_epochs, self.epochs);
        set(&mut t.per_device_train_batch_size, self.batch_size);
        set(&mut t.per_device_eval_batch_size, self.eval_batch_size);
        set(&mut t.learning_rate, self.lr);
        set(&mut t.optimizer.weight_decay, self.weight_decay);
        set(&mut t.optimizer.kind, self.optimizer);
        set(&mut t.optimizer.momentum, self.momentum);
        set(&mut t.lr_scheduler_type, self.scheduler);
        set(&mut t.warmup_ratio, self.warmup_ratio);
        set(&mut t.warmup_steps, self.warmup_steps);
        set(&mut t.gradient_accumulation_steps, self.grad_accum);
        if self.group_by_length {
            t.group_by_length = true;
        }
        set(&mut t.max_grad_norm, self.max_grad_norm);
        if let Some(n) = self.eval_steps {
            t.eval_strategy = EvalStrategy::Steps;
            t.eval_steps = n;
        }
        set(&mut t.logging_steps, self.logging_steps);
        set(&mut t.metric_for_best_model, self.metric.clone());
        if let Some(p) = self.patience {
            t.early_stopping_patience = (p > 0).then_some(p);
        }
        if self.keep_last {
            t.load_best_model_at_end = false;
        }
        set(&mut t.seed, self.seed);
        if self.no_progress || self.json {
            t.progress = false;
        }
        Ok(e)
    }
}

/// The dotted keys of `file` that `understood` (the experiment read from it, serialised again)
/// lacks: the keys no setting took.
fn unknown_keys(file: &toml::Value, understood: &toml::Value, prefix: &str) -> Vec<String> {
    let (toml::Value::Table(file), toml::Value::Table(understood)) = (file, understood) else {
        return Vec::new();
    };
    let mut unknown = Vec::new();
    for (key, value) in file {
        let path = format!("{prefix}{key}");
        match understood.get(key) {
            None => unknown.push(path),
            Some(inner) => unknown.extend(unknown_keys(value, inner, &format!("{path}."))),
        }
    }
    unknown
}

/// Overlays `overlay` onto `base`, table by table.
fn merge(base: &mut toml::Value, overlay: toml::Value) {
    match (base, overlay) {
        (toml::Value::Table(b), toml::Value::Table(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(slot) => merge(slot, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (slot, v) => *slot = v,
    }
}

/// The learning tasks of `prosa train`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum TrainTask {
    /// One label per text.
    #[default]
    SequenceClassification,
    /// One tag per word (NER).
    TokenClassification,
    /// Next-token prediction on a corpus (a GPT from scratch, or fine-tuning --pretrained).
    CausalLm,
    /// English → Portuguese: a Transformer trained on translation pairs (the gettext
    /// catalogues of scripts/setup-assets.sh, or --data PAIRS.tsv).
    Translation,
}

impl TrainTask {
    fn kind(self) -> TaskKind {
        match self {
            TrainTask::SequenceClassification => TaskKind::SequenceClassification,
            TrainTask::TokenClassification => TaskKind::TokenClassification,
            TrainTask::CausalLm => TaskKind::CausalLm,
            TrainTask::Translation => TaskKind::Translation,
        }
    }
}

/// Runs `prosa train`.
pub fn run(args: TrainArgs, device: DeviceSpec) -> anyhow::Result<()> {
    let experiment = args.experiment(device)?;
    let result = prosa::tasks::run(&experiment, args.resume)?;
    crate::train_print::print(&experiment, &result, args.json)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// docs/experiment.toml documents the defaults; keep it true.
    #[test]
    fn the_documented_experiment_file_states_the_defaults() {
        let text = include_str!("../../../docs/experiment.toml");
        let file: Experiment = toml::from_str(text).expect("docs/experiment.toml parses");
        assert_eq!(file, default_experiment());
    }

    #[test]
    fn flags_override_the_defaults() {
        let args = TrainArgs {
            epochs: Some(9),
            hidden: Some(16),
            eval_steps: Some(7),
            patience: Some(0),
            ..Default::default()
        };
        let e = args.experiment(DeviceSpec::Cpu).unwrap();
        assert_eq!((e.training.num_train_epochs, e.model.hidden_size), (9, 16));
        assert_eq!(
            (e.training.eval_strategy, e.training.eval_steps),
            (EvalStrategy::Steps, 7)
        );
        assert_eq!(e.training.early_stopping_patience, None);
    }
}
