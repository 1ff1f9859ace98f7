//! Embedding lookup: rows of token ids → their rows of an embedding table, refusing an id the
//! table does not have (an error naming `input_ids`, instead of candle's index panic).

use candle_core::Tensor;

use crate::error::{Error, Result};

/// The rows of `table` (vocab, d) for `ids` (batch rows of equal length): (batch, seq, d).
pub fn lookup(table: &Tensor, ids: &[Vec<u32>]) -> Result<Tensor> {
    let (batch, seq) = (ids.len(), ids.first().map_or(0, Vec::len));
    let (vocab, d) = table.dims2()?;
    let flat: Vec<u32> = ids.iter().flatten().copied().collect();
    if let Some(bad) = flat.iter().find(|&&t| t as usize >= vocab) {
        return Err(Error::config(
            "input_ids",
            format!("id {bad} is outside the vocabulary of {vocab}"),
        ));
    }
    let index = Tensor::from_vec(flat, batch * seq, table.device())?;
    Ok(table.index_select(&index, 0)?.reshape((batch, seq, d))?)
}

/// [`lookup`] for a table with a padding row, as torch's `Embedding(padding_idx=pad)`: the
/// same values, but the `pad` row gets no gradient (it never trains).
pub fn lookup_with_padding_idx(table: &Tensor, ids: &[Vec<u32>], pad: u32) -> Result<Tensor> {
    let rows = lookup(table, ids)?;
    if !ids.iter().flatten().any(|&t| t == pad) {
        return Ok(rows);
    }
    let (batch, seq) = (ids.len(), ids.first().map_or(0, Vec::len));
    let keep: Vec<f32> = ids.iter().flatten().map(|&t| f32::from(t != pad)).collect();
    let keep = Tensor::from_vec(keep, (batch, seq, 1), table.device())?.to_dtype(rows.dtype())?;
    let held = rows.detach().broadcast_mul(&(1.0 - &keep)?)?;
    Ok((rows.broadcast_mul(&keep)? + held)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_come_back_in_order_and_an_unknown_id_is_named() {
        let table = Tensor::from_vec(
            vec![0f32, 0., 1., 1., 2., 2.],
            (3, 2),
            &crate::device::host(),
        )
        .unwrap();
        let x = lookup(&table, &[vec![2, 0], vec![1, 1]]).unwrap();
        assert_eq!(
            x.to_vec3::<f32>().unwrap(),
            [[[2., 2.], [0., 0.]], [[1., 1.], [1., 1.]]]
        );
        let err = lookup(&table, &[vec![3]]).unwrap_err().to_string();
        assert!(err.contains("input_ids") && err.contains("id 3"), "{err}");
    }
}
