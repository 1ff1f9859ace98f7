//! The Porter stemmer as NLTK's `PorterStemmer()` runs it (mode `NLTK_EXTENSIONS`), which
//! Google's `rouge-score` uses with `use_stemmer=True`: Porter's (1980) five steps with NLTK's
//! changes — irregular forms (`dying` → `die`), `ies`/`ied` on four-letter words, `y` → `i` only
//! after a consonant that is not the whole stem, the `alli`, `fulli` and `logi` rules, and
//! words of at most two letters left alone. No crate implements this variant, and ROUGE scores
//! depend on every rule.

/// NLTK's irregular forms: (word, stem).
const IRREGULAR: [(&str, &str); 16] = [
    ("sky", "sky"),
    ("skies", "sky"),
    ("dying", "die"),
    ("lying", "lie"),
    ("tying", "tie"),
    ("news", "news"),
    ("innings", "inning"),
    ("inning", "inning"),
    ("outings", "outing"),
    ("outing", "outing"),
    ("cannings", "canning"),
    ("canning", "canning"),
    ("howe", "howe"),
    ("proceed", "proceed"),
    ("exceed", "exceed"),
    ("succeed", "succeed"),
];

/// The stem of a word (lower-cased first).
pub fn stem(word: &str) -> String {
    let lower = word.to_lowercase();
    if let Some((_, s)) = IRREGULAR.iter().find(|(w, _)| *w == lower) {
        return s.to_string();
    }
    if word.chars().count() <= 2 {
        return lower;
    }
    let mut w: Vec<char> = lower.chars().collect();
    for step in [step1a, step1b, step1c, step2, step3, step4, step5a, step5b] {
        w = step(w);
    }
    w.into_iter().collect()
}

type Word = Vec<char>;

fn is_vowel(c: char) -> bool {
    matches!(c, 'a' | 'e' | 'i' | 'o' | 'u')
}

/// Whether each letter is a consonant: not a vowel, and `y` only after a vowel (or first).
fn consonants(w: &[char]) -> Vec<bool> {
    let mut flags: Vec<bool> = Vec::with_capacity(w.len());
    for (i, &c) in w.iter().enumerate() {
        let flag = if is_vowel(c) {
            false
        } else if c == 'y' {
            i == 0 || !flags[i - 1]
        } else {
            true
        };
        flags.push(flag);
    }
    flags
}

fn is_consonant(w: &[char], i: usize) -> bool {
    consonants(&w[..=i])[i]
}

/// m in [C](VC)^m[V]: the number of vowel→consonant changes.
fn measure(w: &[char]) -> usize {
    consonants(w).windows(2).filter(|p| !p[0] && p[1]).count()
}

fn contains_vowel(w: &[char]) -> bool {
    consonants(w).iter().any(|c| !c)
}

fn ends_double_consonant(w: &[char]) -> bool {
    let n = w.len();
    n >= 2 && w[n - 1] == w[n - 2] && is_consonant(w, n - 1)
}

/// *o: consonant–vowel–consonant with the last not w, x or y; or (NLTK) a vowel–consonant
/// word of two letters.
fn ends_cvc(w: &[char]) -> bool {
    let n = w.len();
    let c = consonants(w);
    (n >= 3 && c[n - 3] && !c[n - 2] && c[n - 1] && !matches!(w[n - 1], 'w' | 'x' | 'y'))
        || (n == 2 && !c[0] && c[1])
}

fn ends_with(w: &[char], suffix: &str) -> bool {
    let s: Vec<char> = suffix.chars().collect();
    w.len() >= s.len() && w[w.len() - s.len()..] == s[..]
}

fn without(w: &[char], suffix: &str) -> Word {
    w[..w.len() - suffix.chars().count()].to_vec()
}

fn with(mut stem: Word, ending: &str) -> Word {
    stem.extend(ending.chars());
    stem
}

/// A rule: suffix, replacement, condition on the stem.
type Rule<'a> = (&'a str, &'a str, &'a dyn Fn(&[char]) -> bool);

/// The first rule whose suffix ends the word decides: replaced when its condition holds,
/// unchanged otherwise.
fn apply(w: Word, rules: &[Rule]) -> Word {
    for (suffix, replacement, condition) in rules {
        if ends_with(&w, suffix) {
            let stem = without(&w, suffix);
            return if condition(&stem) {
                with(stem, replacement)
            } else {
                w
            };
        }
    }
    w
}

fn always(_: &[char]) -> bool {
    true
}

fn positive(stem: &[char]) -> bool {
    measure(stem) > 0
}

fn above_one(stem: &[char]) -> bool {
    measure(stem) > 1
}

fn step1a(w: Word) -> Word {
    if ends_with(&w, "ies") && w.len() == 4 {
        return with(without(&w, "ies"), "ie");
    }
    apply(
        w,
        &[
            ("sses", "ss", &always),
            ("ies", "i", &always),
            ("ss", "ss", &always),
            ("s", "", &always),
        ],
    )
}

fn step1b(w: Word) -> Word {
    if ends_with(&w, "ied") {
        let ending = if w.len() == 4 { "ie" } else { "i" };
        return with(without(&w, "ied"), ending);
    }
    if ends_with(&w, "eed") {
        let stem = without(&w, "eed");
        return if measure(&stem) > 0 {
            with(stem, "ee")
        } else {
            w
        };
    }
    let Some(stem) = ["ed", "ing"]
        .iter()
        .filter(|s| ends_with(&w, s))
        .map(|s| without(&w, s))
        .find(|stem| contains_vowel(stem))
    else {
        return w;
    };
    for (suffix, replacement) in [("at", "ate"), ("bl", "ble"), ("iz", "ize")] {
        if ends_with(&stem, suffix) {
            return with(without(&stem, suffix), replacement);
        }
    }
    if ends_double_consonant(&stem) {
        let last = stem[stem.len() - 1];
        return if matches!(last, 'l' | 's' | 'z') {
            stem
        } else {
            stem[..stem.len() - 1].to_vec()
        };
    }
    if measure(&stem) == 1 && ends_cvc(&stem) {
        return with(stem, "e");
    }
    stem
}

fn step1c(w: Word) -> Word {
    apply(
        w,
        &[("y", "i", &|stem: &[char]| {
            stem.len() > 1 && is_consonant(stem, stem.len() - 1)
        })],
    )
}

fn step2(w: Word) -> Word {
    if ends_with(&w, "alli") && positive(&without(&w, "alli")) {
        return step2(with(without(&w, "alli"), "al"));
    }
    let logi_stem_and_l = w.len() >= 3 && positive(&w[..w.len() - 3]);
    let logi = move |_: &[char]| logi_stem_and_l;
    apply(
        w,
        &[
            ("ational", "ate", &positive),
            ("tional", "tion", &positive),
            ("enci", "ence", &positive),
            ("anci", "ance", &positive),
            ("izer", "ize", &positive),
            ("bli", "ble", &positive),
            ("alli", "al", &positive),
            ("entli", "ent", &positive),
            ("eli", "e", &positive),
            ("ousli", "ous", &positive),
            ("ization", "ize", &positive),
            ("ation", "ate", &positive),
            ("ator", "ate", &positive),
            ("alism", "al", &positive),
            ("iveness", "ive", &positive),
            ("fulness", "ful", &positive),
            ("ousness", "ous", &positive),
            ("aliti", "al", &positive),
            ("iviti", "ive", &positive),
            ("biliti", "ble", &positive),
            ("fulli", "ful", &positive),
            ("logi", "log", &logi),
        ],
    )
}

fn step3(w: Word) -> Word {
    apply(
        w,
        &[
            ("icate", "ic", &positive),
            ("ative", "", &positive),
            ("alize", "al", &positive),
            ("iciti", "ic", &positive),
            ("ical", "ic", &positive),
            ("ful", "", &positive),
            ("ness", "", &positive),
        ],
    )
}

fn step4(w: Word) -> Word {
    let ion = |stem: &[char]| above_one(stem) && matches!(stem.last(), Some('s' | 't'));
    apply(
        w,
        &[
            ("al", "", &above_one),
            ("ance", "", &above_one),
            ("ence", "", &above_one),
            ("er", "", &above_one),
            ("ic", "", &above_one),
            ("able", "", &above_one),
            ("ible", "", &above_one),
            ("ant", "", &above_one),
            ("ement", "", &above_one),
            ("ment", "", &above_one),
            ("ent", "", &above_one),
            ("ion", "", &ion),
            ("ou", "", &above_one),
            ("ism", "", &above_one),
            ("ate", "", &above_one),
            ("iti", "", &above_one),
            ("ous", "", &above_one),
            ("ive", "", &above_one),
            ("ize", "", &above_one),
        ],
    )
}

fn step5a(w: Word) -> Word {
    if ends_with(&w, "e") {
        let stem = without(&w, "e");
        let m = measure(&stem);
        if m > 1 || (m == 1 && !ends_cvc(&stem)) {
            return stem;
        }
    }
    w
}

fn step5b(w: Word) -> Word {
    let long_enough = measure(&w[..w.len().saturating_sub(1)]) > 1;
    apply(w, &[("ll", "l", &move |_: &[char]| long_enough)])
}

#[cfg(test)]
mod tests {
    use super::stem;

    #[test]
    fn porters_examples_and_nltks_changes() {
        for (word, expected) in [
            ("caresses", "caress"),
            ("ponies", "poni"),
            ("ties", "tie"),
            ("cats", "cat"),
            ("agreed", "agre"),
            ("plastered", "plaster"),
            ("motoring", "motor"),
            ("hopping", "hop"),
            ("falling", "fall"),
            ("filing", "file"),
            ("happy", "happi"),
            ("enjoy", "enjoy"),
            ("relational", "relat"),
            ("generalization", "gener"),
            ("dying", "die"),
            ("controlling", "control"),
            ("is", "is"),
        ] {
            assert_eq!(stem(word), expected, "{word}");
        }
    }
}
