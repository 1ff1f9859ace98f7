//! Which `[model]` and `[data]` settings each task (and, for classification, each
//! architecture) reads — what `Experiment::check` compares an experiment against, so a setting
//! that would be ignored is an error.

use super::experiment::{Experiment, TaskKind};

impl Experiment {
    /// The `[model]` settings the task (and, for classification, the architecture) reads.
    pub(super) fn model_settings_used(&self) -> &'static [&'static str] {
        match (self.task, self.model.arch.as_str()) {
            (TaskKind::SequenceClassification, "bow") => &[
                "arch",
                "vectorizer",
                "hidden_size",
                "dropout",
                "class_weight",
            ],
            (TaskKind::SequenceClassification, "rnn" | "lstm" | "gru") => &[
                "arch",
                "hidden_size",
                "dropout",
                "class_weight",
                "vectors",
                "vectors_index",
                "freeze_embeddings",
                "embedding_dim",
                "max_len",
                "num_layers",
                "bidirectional",
                "pooling",
                "num_words",
            ],
            (TaskKind::SequenceClassification, "transformer") => &[
                "arch",
                "hidden_size",
                "dropout",
                "class_weight",
                "embedding_dim",
                "max_len",
                "num_layers",
                "num_heads",
                "num_words",
            ],
            (TaskKind::SequenceClassification, "ulmfit") => {
                &["arch", "pretrained", "class_weight", "ulmfit", "vocab_size"]
            }
            (TaskKind::SequenceClassification, "elmo") => &[
                "arch",
                "pretrained",
                "hidden_size",
                "dropout",
                "class_weight",
            ],
            (TaskKind::SequenceClassification, _) => &[
                "arch",
                "pretrained",
                "freeze_layers",
                "freeze_encoder",
                "max_tokens",
                "class_weight",
            ],
            (TaskKind::TokenClassification, "elmo") => {
                &["arch", "pretrained", "hidden_size", "dropout"]
            }
            (TaskKind::TokenClassification, _) => &[
                "arch",
                "pretrained",
                "max_tokens",
                "freeze_layers",
                "freeze_encoder",
            ],
            // Fine-tuning keeps the pretrained model's architecture and sizes.
            (TaskKind::CausalLm, _) if self.model.pretrained.is_some() => {
                &["pretrained", "block_size", "dropout"]
            }
            (TaskKind::Translation, "rnn") => &[
                "arch",
                "hidden_size",
                "embedding_dim",
                "vocab_size",
                "max_tokens",
                "dropout",
                "label_smoothing",
            ],
            (TaskKind::Translation, "rnn-attention") => &[
                "arch",
                "hidden_size",
                "embedding_dim",
                "vocab_size",
                "max_tokens",
                "dropout",
                "label_smoothing",
                "attention",
            ],
            (TaskKind::Translation, "t5") => &[
                "arch",
                "pretrained",
                "reinitialize",
                "hidden_size",
                "num_layers",
                "num_heads",
                "vocab_size",
                "max_tokens",
                "dropout",
            ],
            (TaskKind::Translation, _) => &[
                "arch",
                "hidden_size",
                "num_layers",
                "num_heads",
                "vocab_size",
                "max_tokens",
                "dropout",
                "label_smoothing",
                "norm_first",
            ],
            (TaskKind::CausalLm, _) => &[
                "arch",
                "hidden_size",
                "num_layers",
                "num_heads",
                "vocab_size",
                "block_size",
                "dropout",
            ],
        }
    }

    /// The `[data]` settings the task reads.
    pub(super) fn data_settings_used(&self) -> &'static [&'static str] {
        match self.task {
            TaskKind::SequenceClassification => &[
                "path",
                "test_path",
                "read",
                "max_rows",
                "test_size",
                "stratify",
                "validation_split",
                "balance",
            ],
            TaskKind::TokenClassification => &["path", "test_path", "validation_split"],
            TaskKind::CausalLm => &["path", "max_rows", "validation_split"],
            TaskKind::Translation => &[
                "path",
                "test_path",
                "max_rows",
                "validation_split",
                "test_size",
            ],
        }
    }
}
