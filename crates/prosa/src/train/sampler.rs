//! The order examples are batched in: shuffled each epoch, and with `group_by_length` (as
//! transformers' `LengthGroupedSampler`) shuffled then sorted by length within "megabatches" of
//! 50 batches, so a batch holds examples of similar length and pads little, while the epoch's
//! order stays random at the scale of megabatches.

/// Batches per megabatch (transformers' value).
const MEGABATCH: usize = 50;

/// `order` (already shuffled) regrouped so that each run of `batch_size` indices has similar
/// `lengths`: within each megabatch, longest first.
pub fn length_grouped(order: &[usize], lengths: &[usize], batch_size: usize) -> Vec<usize> {
    let mut out = Vec::with_capacity(order.len());
    for mega in order.chunks((MEGABATCH * batch_size).max(1)) {
        let mut mega = mega.to_vec();
        // Stable: equal lengths keep their shuffled order.
        mega.sort_by_key(|&i| std::cmp::Reverse(lengths[i]));
        out.extend(mega);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_hold_similar_lengths_and_every_example_once() {
        let lengths: Vec<usize> = (0..1000).map(|i| (i * 37) % 61).collect();
        let order: Vec<usize> = (0..1000).rev().collect();
        let grouped = length_grouped(&order, &lengths, 4);
        let mut seen = grouped.clone();
        seen.sort_unstable();
        assert_eq!(seen, (0..1000).collect::<Vec<_>>());
        // Padding of a batch = its longest minus each length; grouping cuts it.
        let padding = |o: &[usize]| -> usize {
            o.chunks(4)
                .map(|b| {
                    let longest = b.iter().map(|&i| lengths[i]).max().unwrap();
                    b.iter().map(|&i| longest - lengths[i]).sum::<usize>()
                })
                .sum()
        };
        assert!(
            padding(&grouped) * 10 < padding(&order),
            "{} vs {}",
            padding(&grouped),
            padding(&order)
        );
    }
}
