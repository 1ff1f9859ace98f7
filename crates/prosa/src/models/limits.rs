//! Sane bounds on the sizes a config file states, checked before anything is allocated: a
//! config or GGUF header claiming absurd sizes is an error naming the field, never a huge
//! allocation or an abort.

/// The largest value any one size may take (vocabulary, width, positions…).
pub const MAX_SIZE: usize = 1 << 22;
/// The most layers or heads a model may have.
pub const MAX_COUNT: usize = 4096;
/// The most parameters a model may have (f32: 160 GB).
pub const MAX_PARAMETERS: usize = 40_000_000_000;

/// Every size positive and at most [`MAX_SIZE`] (layer and head counts at most
/// [`MAX_COUNT`]); the message names the first bad field.
pub fn check_sizes(sizes: &[(&str, usize)]) -> Result<(), String> {
    for &(field, value) in sizes {
        let limit = if field.contains("layers") || field.contains("heads") {
            MAX_COUNT
        } else {
            MAX_SIZE
        };
        if value == 0 || value > limit {
            return Err(format!("{field} = {value} is outside 1..={limit}"));
        }
    }
    Ok(())
}

/// An estimated parameter count within [`MAX_PARAMETERS`].
pub fn check_parameter_count(estimate: f64) -> Result<(), String> {
    if estimate > MAX_PARAMETERS as f64 {
        return Err(format!(
            "the sizes make about {estimate:.3e} parameters, more than the {MAX_PARAMETERS} prosa accepts"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_and_absurd_sizes_name_their_field() {
        assert!(check_sizes(&[("hidden_size", 768), ("num_attention_heads", 12)]).is_ok());
        let err = check_sizes(&[("hidden_size", 0)]).unwrap_err();
        assert!(err.contains("hidden_size = 0"), "{err}");
        let err = check_sizes(&[("num_hidden_layers", 1 << 20)]).unwrap_err();
        assert!(err.contains("num_hidden_layers"), "{err}");
        assert!(check_parameter_count(1e15).is_err());
    }
}
