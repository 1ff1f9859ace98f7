//! word2vec's vocabulary as gensim builds it: words counted over the corpus, those under
//! `min_count` dropped, the rest sorted by descending count; the frequent-word subsampling
//! probabilities, the cumulative table of count^0.75 that negative samples are drawn from, and
//! the Huffman codes of hierarchical softmax.

use std::collections::HashMap;

/// The kept words, their counts and what training draws from them.
#[derive(Debug, Clone)]
pub struct Vocab {
    /// Words by id, most frequent first.
    pub words: Vec<String>,
    /// Occurrences of each word.
    pub counts: Vec<u64>,
    /// Id of each word.
    pub index: HashMap<String, u32>,
    /// Probability (scaled to 2^32) of keeping an occurrence of each word.
    pub keep: Vec<u32>,
    /// Cumulative count^0.75, scaled to 2^31 − 1 (gensim's `cum_table`).
    pub cum_table: Vec<u32>,
    /// Huffman code (bits) and path (inner nodes) of each word, when asked.
    pub huffman: Option<Vec<(Vec<u8>, Vec<u32>)>>,
}

/// Gensim's keep probability of a word seen `count` times when `threshold` = sample × total.
fn keep_probability(count: u64, threshold: f64) -> f64 {
    if threshold <= 0.0 {
        return 1.0;
    }
    let v = count as f64;
    ((v / threshold).sqrt() + 1.0) * (threshold / v)
}

impl Vocab {
    /// The vocabulary of `counts` (word → occurrences) with gensim's settings.
    pub fn new(
        counts: HashMap<String, u64>,
        min_count: u64,
        sample: f64,
        ns_exponent: f64,
        hierarchical: bool,
    ) -> Self {
        let mut kept: Vec<(String, u64)> = counts
            .into_iter()
            .filter(|(_, c)| *c >= min_count)
            .collect();
        // Most frequent first; ties by word, so runs are reproducible.
        kept.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let (words, counts): (Vec<String>, Vec<u64>) = kept.into_iter().unzip();
        let total: u64 = counts.iter().sum();
        let threshold = sample * total as f64;
        let keep = counts
            .iter()
            .map(|&c| {
                let p = keep_probability(c, threshold).min(1.0);
                (p * 4_294_967_296.0).round().min(u32::MAX as f64) as u32
            })
            .collect();
        let index = words
            .iter()
            .enumerate()
            .map(|(i, w)| (w.clone(), i as u32))
            .collect();
        let cum_table = cumulative_table(&counts, ns_exponent);
        let huffman = hierarchical.then(|| huffman_codes(&counts));
        Self {
            words,
            counts,
            index,
            keep,
            cum_table,
            huffman,
        }
    }

    /// Number of words.
    pub fn len(&self) -> usize {
        self.words.len()
    }

    /// Whether no word was kept.
    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }

    /// A negative sample for the random number `r`: the first word whose cumulative weight
    /// reaches `r mod total` (gensim's `bisect_left` on `cum_table`).
    pub fn draw(&self, r: u64) -> u32 {
        let last = *self.cum_table.last().unwrap_or(&1) as u64;
        let target = (r % last.max(1)) as u32;
        self.cum_table.partition_point(|&c| c < target) as u32
    }
}

/// Gensim's `make_cum_table`: running sums of count^power, scaled to 2^31 − 1.
fn cumulative_table(counts: &[u64], power: f64) -> Vec<u32> {
    let domain = (i32::MAX) as f64;
    let total: f64 = counts.iter().map(|&c| (c as f64).powf(power)).sum();
    let mut running = 0.0;
    counts
        .iter()
        .map(|&c| {
            running += (c as f64).powf(power);
            (running / total * domain).round() as u32
        })
        .collect()
}

/// Huffman codes and paths of words with these counts (word2vec's `CreateBinaryTree`): inner
/// node `n` is row `n` of the output weights; the root is the last.
fn huffman_codes(counts: &[u64]) -> Vec<(Vec<u8>, Vec<u32>)> {
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;
    let n = counts.len();
    if n < 2 {
        return vec![(vec![0], vec![0]); n];
    }
    let mut heap: BinaryHeap<Reverse<(u64, usize)>> = counts
        .iter()
        .enumerate()
        .map(|(i, &c)| Reverse((c, i)))
        .collect();
    // Nodes 0..n are words, n.. are inner nodes; parent and the bit taken from the parent.
    let mut parent = vec![0usize; 2 * n - 1];
    let mut bit = vec![0u8; 2 * n - 1];
    let mut next = n;
    while let (Some(Reverse((c1, a))), Some(Reverse((c2, b)))) = (heap.pop(), heap.pop()) {
        parent[a] = next;
        parent[b] = next;
        bit[b] = 1;
        heap.push(Reverse((c1 + c2, next)));
        next += 1;
        if heap.len() == 1 {
            break;
        }
    }
    let root = 2 * n - 2;
    (0..n)
        .map(|w| {
            let (mut code, mut path) = (Vec::new(), Vec::new());
            let mut node = w;
            while node != root {
                code.push(bit[node]);
                node = parent[node];
                path.push((node - n) as u32);
            }
            code.reverse();
            path.reverse();
            (code, path)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts() -> HashMap<String, u64> {
        [
            ("the", 50u64),
            ("cat", 10),
            ("sat", 10),
            ("mat", 3),
            ("rare", 1),
        ]
        .iter()
        .map(|(w, c)| (w.to_string(), *c))
        .collect()
    }

    #[test]
    fn words_under_min_count_go_and_the_rest_sort_by_count() {
        let v = Vocab::new(counts(), 2, 0.0, 0.75, false);
        assert_eq!(v.words, ["the", "cat", "sat", "mat"]);
        assert!(v.keep.iter().all(|&k| k == u32::MAX));
    }

    #[test]
    fn negative_samples_follow_count_to_the_three_quarters() {
        let v = Vocab::new(counts(), 1, 0.0, 0.75, false);
        let mut seen = vec![0u64; v.len()];
        let mut r: u64 = 1;
        for _ in 0..200_000 {
            r = r.wrapping_mul(25_214_903_917).wrapping_add(11);
            seen[v.draw(r >> 16) as usize] += 1;
        }
        let weights: Vec<f64> = v.counts.iter().map(|&c| (c as f64).powf(0.75)).collect();
        let total: f64 = weights.iter().sum();
        for (s, w) in seen.iter().zip(&weights) {
            let expected = w / total;
            assert!((*s as f64 / 200_000.0 - expected).abs() < 0.01, "{seen:?}");
        }
    }

    #[test]
    fn frequent_words_are_kept_less_often() {
        let v = Vocab::new(counts(), 1, 0.01, 0.75, false);
        assert!(v.keep[0] < v.keep[1] && v.keep[1] <= v.keep[4]);
    }

    #[test]
    fn huffman_codes_are_prefix_free_and_shorter_for_frequent_words() {
        let v = Vocab::new(counts(), 1, 0.0, 0.75, true);
        let codes = v.huffman.unwrap();
        assert!(codes[0].0.len() <= codes[4].0.len());
        for (i, a) in codes.iter().enumerate() {
            assert_eq!(a.0.len(), a.1.len());
            for (j, b) in codes.iter().enumerate() {
                if i != j {
                    assert!(!b.0.starts_with(&a.0), "{:?} prefixes {:?}", a.0, b.0);
                }
            }
        }
    }
}
