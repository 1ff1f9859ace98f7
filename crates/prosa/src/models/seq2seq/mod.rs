//! Encoder–decoder models (the course's Unit II): the Transformer of "Attention is all you
//! need" with PyTorch's names ([`transformer`]) and a translator built on it ([`translator`]:
//! shared BPE vocabulary, tied embeddings, label smoothing). Each generates through
//! [`crate::generation::Generator`]: the sources are encoded once, the decoder starts from its
//! start token, and the cross-attention memories follow the beams.

pub mod transformer;
pub mod translator;
