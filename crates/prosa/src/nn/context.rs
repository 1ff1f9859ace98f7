//! The context of one forward pass: training or evaluation, and the seeded randomness dropout
//! and masking draw from.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// Whether a forward pass trains (dropout on) or evaluates, and the randomness it may use.
pub struct ForwardCtx {
    /// True while training.
    pub train: bool,
    /// Randomness for dropout and masking, seeded per step.
    pub rng: ChaCha8Rng,
}

impl ForwardCtx {
    /// A context for evaluation or inference (no randomness used).
    pub fn eval() -> Self {
        Self {
            train: false,
            rng: ChaCha8Rng::seed_from_u64(0),
        }
    }
}
