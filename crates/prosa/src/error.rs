//! The one error type of the library. Every variant names what the reader needs to fix the
//! problem: the file, the line, the column, the tensor or the setting.

use std::path::PathBuf;

/// Result alias used throughout prosa.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in prosa, written for the person who will read it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading or writing a file failed.
    #[error("{path}: {error}")]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The operating-system error (shown in the message, so not repeated as a `source`).
        error: std::io::Error,
    },
    /// A data file has no rows.
    #[error("{path}: the file is empty (no data rows)")]
    EmptyFile {
        /// The data file.
        path: PathBuf,
    },
    /// A data file could not be decoded with the chosen encoding.
    #[error("{path}, line {line}: not valid {encoding} text (try --encoding latin-1)")]
    Encoding {
        /// The data file.
        path: PathBuf,
        /// 1-based line of the first undecodable byte.
        line: usize,
        /// The encoding that was tried.
        encoding: String,
    },
    /// A column named by the user is not in the file.
    #[error("{path}: no column named '{column}' (columns are: {available})")]
    MissingColumn {
        /// The data file.
        path: PathBuf,
        /// The missing column.
        column: String,
        /// The columns the file does have, comma separated.
        available: String,
    },
    /// A row of a data file is malformed.
    #[error("{path}, line {line}: {message}")]
    BadRow {
        /// The data file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong with the row.
        message: String,
    },
    /// A label was met that the model does not know.
    #[error("{path}, line {line}: unknown label '{label}' (the model knows: {known})")]
    UnknownLabel {
        /// The data file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// The label found in the file.
        label: String,
        /// The labels the model was trained on.
        known: String,
    },
    /// A model folder is missing a file, or a file in it is malformed.
    #[error("{path}: {message}")]
    ModelFolder {
        /// The folder or the file inside it.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A tensor of a checkpoint is missing or has the wrong shape.
    #[error("{path}: tensor '{name}': {message}")]
    Tensor {
        /// The checkpoint file.
        path: PathBuf,
        /// The tensor's name.
        name: String,
        /// What is wrong (missing, wrong shape, unexpected).
        message: String,
    },
    /// A setting has a value prosa cannot use.
    #[error("setting '{field}': {message}")]
    Config {
        /// The setting (a field of a config file or a CLI flag).
        field: String,
        /// Why the value cannot be used.
        message: String,
    },
    /// A config or state file could not be parsed.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message (it usually names the line and column).
        message: String,
    },
    /// The loss became NaN or infinite.
    #[error(
        "training stopped: the loss became {value} at step {step} (epoch {epoch:.2}); \
         {checkpoint}. Lower the learning rate or enable gradient clipping (max_grad_norm)."
    )]
    NonFiniteLoss {
        /// The offending value, printed.
        value: String,
        /// Global optimisation step.
        step: usize,
        /// Fractional epoch.
        epoch: f64,
        /// Where the last good checkpoint is, in words.
        checkpoint: String,
    },
    /// A subword tokenizer error from the `tokenizers` crate.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// Drawing a plot failed.
    #[error("plot {path}: {message}")]
    Plot {
        /// The image file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// An error of the tensor engine.
    #[error("tensor engine: {0}")]
    Candle(#[from] candle_core::Error),
}

impl Error {
    /// Builds an [`Error::Io`] for `path`.
    pub fn io(path: impl Into<PathBuf>, error: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            error,
        }
    }

    /// Builds an [`Error::Config`].
    pub fn config(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Config {
            field: field.into(),
            message: message.into(),
        }
    }

    /// Builds an [`Error::ModelFolder`].
    pub fn folder(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::ModelFolder {
            path: path.into(),
            message: message.into(),
        }
    }
}
