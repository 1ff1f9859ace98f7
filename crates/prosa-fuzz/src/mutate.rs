//! Havoc-style mutations of a seed: bit flips, interesting integers written over bytes,
//! insertions, deletions, duplicated and spliced ranges, truncation — and, for text formats,
//! tokens that parsers trip on (quotes, separators, brackets, huge numbers, NaN, a BOM).

use rand::seq::IndexedRandom;
use rand::{Rng, RngCore};

/// Integers that sit on boundaries (as 1, 2, 4 or 8 little-endian bytes).
const INTERESTING: [u64; 12] = [
    0,
    1,
    0x7f,
    0x80,
    0xff,
    0x7fff,
    0xffff,
    0x7fff_ffff,
    0xffff_ffff,
    1 << 40,
    i64::MAX as u64,
    u64::MAX,
];

/// Tokens that text parsers trip on.
const TOKENS: [&str; 24] = [
    "\"",
    ",",
    "\t",
    "\n",
    "\r\n",
    "{",
    "}",
    "[",
    "]",
    ":",
    "=",
    "-1",
    "0",
    "1e309",
    "NaN",
    "-inf",
    "\u{feff}",
    "\0",
    "99999999999999999999",
    "null",
    "true",
    "{{",
    "{%",
    "%}",
];

/// Mutates `data` in place with 1 to 8 random operations; `others` are seeds to splice from.
pub fn mutate(data: &mut Vec<u8>, others: &[Vec<u8>], text: bool, rng: &mut impl RngCore) {
    let rounds = 1 + rng.random_range(0..8);
    for _ in 0..rounds {
        let choice = rng.random_range(0..if text { 10 } else { 8 });
        match choice {
            0 => flip_bit(data, rng),
            1 => random_byte(data, rng),
            2 => interesting_integer(data, rng),
            3 => insert_bytes(data, rng),
            4 => delete_range(data, rng),
            5 => duplicate_range(data, rng),
            6 => splice(data, others, rng),
            7 => truncate(data, rng),
            _ => insert_token(data, rng),
        }
    }
}

fn position(data: &[u8], rng: &mut impl RngCore) -> usize {
    if data.is_empty() {
        0
    } else {
        rng.random_range(0..data.len())
    }
}

fn flip_bit(data: &mut [u8], rng: &mut impl RngCore) {
    if !data.is_empty() {
        let at = position(data, rng);
        data[at] ^= 1 << rng.random_range(0..8);
    }
}

fn random_byte(data: &mut [u8], rng: &mut impl RngCore) {
    if !data.is_empty() {
        let at = position(data, rng);
        data[at] = rng.random();
    }
}

fn interesting_integer(data: &mut [u8], rng: &mut impl RngCore) {
    let width = *[1usize, 2, 4, 8].choose(rng).unwrap_or(&4);
    if data.len() < width {
        return;
    }
    let value = *INTERESTING.choose(rng).unwrap_or(&0);
    let at = rng.random_range(0..=data.len() - width);
    data[at..at + width].copy_from_slice(&value.to_le_bytes()[..width]);
}

fn insert_bytes(data: &mut Vec<u8>, rng: &mut impl RngCore) {
    let at = position(data, rng);
    let n = 1 + rng.random_range(0..16);
    let bytes: Vec<u8> = (0..n).map(|_| rng.random()).collect();
    data.splice(at..at, bytes);
}

fn delete_range(data: &mut Vec<u8>, rng: &mut impl RngCore) {
    if data.len() > 1 {
        let at = position(data, rng);
        let n = 1 + rng.random_range(0..(data.len() - at).min(64));
        data.drain(at..at + n);
    }
}

fn duplicate_range(data: &mut Vec<u8>, rng: &mut impl RngCore) {
    if data.is_empty() || data.len() > 1 << 20 {
        return;
    }
    let from = position(data, rng);
    let n = 1 + rng.random_range(0..(data.len() - from).min(256));
    let chunk = data[from..from + n].to_vec();
    let at = position(data, rng);
    data.splice(at..at, chunk);
}

fn splice(data: &mut Vec<u8>, others: &[Vec<u8>], rng: &mut impl RngCore) {
    let Some(other) = others.choose(rng) else {
        return;
    };
    if other.is_empty() || data.is_empty() {
        return;
    }
    let cut = position(data, rng);
    let from = rng.random_range(0..other.len());
    data.truncate(cut);
    data.extend_from_slice(&other[from..]);
}

fn truncate(data: &mut Vec<u8>, rng: &mut impl RngCore) {
    if !data.is_empty() {
        let keep = rng.random_range(0..data.len());
        data.truncate(keep);
    }
}

fn insert_token(data: &mut Vec<u8>, rng: &mut impl RngCore) {
    let token = TOKENS.choose(rng).unwrap_or(&",").as_bytes().to_vec();
    let at = position(data, rng);
    data.splice(at..at, token);
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn mutations_change_the_input_and_are_seeded() {
        let seed = b"text,label\nhello,pos\n".to_vec();
        let run = |s: u64| {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(s);
            (0..50)
                .map(|_| {
                    let mut d = seed.clone();
                    mutate(&mut d, std::slice::from_ref(&seed), true, &mut rng);
                    d
                })
                .collect::<Vec<_>>()
        };
        let a = run(7);
        assert_eq!(a, run(7), "the same seed gives the same inputs");
        assert!(a.iter().filter(|d| **d != seed).count() > 40);
    }
}
