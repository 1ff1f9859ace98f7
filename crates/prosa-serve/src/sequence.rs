//! One generation in progress: its key/value cache, its own sampling settings and random
//! numbers, and the text sent so far. It chooses each token with transformers' logits
//! processors and warpers, stops at an end token, a stop string (the text is cut before it, as
//! OpenAI does), `max_tokens`, or the model's context, and holds back text that may still turn
//! into a stop string or an unfinished character.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tokio::sync::mpsc::UnboundedSender;

use prosa::generation::{logits, GenerationConfig};
use prosa::models::decoder::KvCache;
use prosa::text::SubwordTokenizer;

use crate::error::ApiError;

/// Why a generation ended, with OpenAI's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FinishReason {
    /// An end token or a stop string.
    Stop,
    /// `max_tokens` or the model's context.
    Length,
}

/// What a generation tells its request.
#[derive(Debug)]
pub enum Event {
    /// More text.
    Text(String),
    /// The end.
    Done {
        /// Why.
        reason: FinishReason,
        /// Tokens of the prompt.
        prompt_tokens: usize,
        /// Tokens generated (an end token included).
        completion_tokens: usize,
    },
    /// The generation failed (the server goes on).
    Failed(ApiError),
}

/// A generation to run.
pub struct Request {
    /// The prompt's token ids.
    pub prompt: Vec<u32>,
    /// Sampling settings, `max_new_tokens` (set) and end tokens.
    pub config: GenerationConfig,
    /// Text that ends the generation, cut from the answer.
    pub stop: Vec<String>,
    /// Which of the request's choices this is (OpenAI's `n`).
    pub index: usize,
    /// Where the events go, tagged with `index`; a closed channel (the client left) cancels
    /// the generation.
    pub events: UnboundedSender<(usize, Event)>,
}

/// A generation decoding.
pub struct Sequence {
    /// The request's channel.
    events: UnboundedSender<(usize, Event)>,
    index: usize,
    /// The cache of every position so far except `pending`.
    pub cache: KvCache,
    /// The last chosen token, not yet in the cache.
    pub pending: u32,
    config: GenerationConfig,
    stop: Vec<String>,
    rng: ChaCha8Rng,
    /// Prompt and generated tokens.
    tokens: Vec<u32>,
    prompt_len: usize,
    sent: usize,
    max_new: usize,
    context: usize,
}

impl Sequence {
    /// A sequence whose prompt is already in `cache`.
    pub fn new(request: Request, cache: KvCache, context: usize) -> Self {
        let max_new = request.config.max_new_tokens.unwrap_or(16);
        Self {
            events: request.events,
            index: request.index,
            cache,
            pending: 0,
            rng: ChaCha8Rng::seed_from_u64(request.config.seed),
            prompt_len: request.prompt.len(),
            tokens: request.prompt,
            config: request.config,
            stop: request.stop,
            sent: 0,
            max_new,
            context,
        }
    }

    /// The position of `pending`.
    pub fn position(&self) -> u32 {
        (self.tokens.len() - 1) as u32
    }

    /// True when the client has gone.
    pub fn cancelled(&self) -> bool {
        self.events.is_closed()
    }

    /// Chooses the next token from next-token `scores` and sends the text it completes.
    /// Returns false when the sequence has ended (its last event sent).
    pub fn advance(&mut self, mut scores: Vec<f32>, tokenizer: &SubwordTokenizer) -> bool {
        let generated = self.tokens.len() - self.prompt_len;
        logits::process(&mut scores, &self.tokens, generated, &self.config);
        let token = if self.config.do_sample {
            logits::warp(&mut scores, &self.config);
            logits::sample(&scores, &mut self.rng)
        } else {
            logits::argmax(&scores)
        };
        self.tokens.push(token);
        self.pending = token;
        if self.config.eos_token_ids.contains(&token) {
            return self.finish(tokenizer, FinishReason::Stop, true);
        }
        let text = match tokenizer.decode(&self.tokens[self.prompt_len..], true) {
            Ok(t) => t,
            Err(e) => return self.fail(e.into()),
        };
        if let Some(cut) = self.stop.iter().filter_map(|s| text.find(s.as_str())).min() {
            self.send_text(&text[..cut]);
            return self.finish(tokenizer, FinishReason::Stop, false);
        }
        let full = self.tokens.len() - self.prompt_len >= self.max_new
            || self.tokens.len() >= self.context;
        if full {
            self.send_text(&text);
            return self.finish(tokenizer, FinishReason::Length, false);
        }
        let safe = self.safe_length(&text);
        self.send_text(&text[..safe]);
        true
    }

    /// Bytes of `text` that can be sent: not a trailing unfinished character, not a tail that
    /// may grow into a stop string.
    fn safe_length(&self, text: &str) -> usize {
        let mut safe = text.len();
        if text.ends_with('\u{FFFD}') {
            safe -= '\u{FFFD}'.len_utf8();
        }
        let head = &text[..safe];
        let held = self
            .stop
            .iter()
            .map(|s| {
                (1..s.len())
                    .rev()
                    .filter(|&k| s.is_char_boundary(k))
                    .find(|&k| head.ends_with(&s[..k]))
                    .unwrap_or(0)
            })
            .max()
            .unwrap_or(0);
        safe - held
    }

    fn send_text(&mut self, text: &str) {
        if text.len() > self.sent && text.is_char_boundary(self.sent) {
            let _ = self
                .events
                .send((self.index, Event::Text(text[self.sent..].to_string())));
            self.sent = text.len();
        }
    }

    /// Sends what is left of the text (unless a stop string cut it) and the end.
    fn finish(&mut self, tokenizer: &SubwordTokenizer, reason: FinishReason, flush: bool) -> bool {
        if flush {
            if let Ok(text) = tokenizer.decode(&self.tokens[self.prompt_len..], true) {
                self.send_text(&text);
            }
        }
        let done = Event::Done {
            reason,
            prompt_tokens: self.prompt_len,
            completion_tokens: self.tokens.len() - self.prompt_len,
        };
        let _ = self.events.send((self.index, done));
        false
    }

    /// Sends the error; the sequence ends.
    pub fn fail(&mut self, error: ApiError) -> bool {
        let _ = self.events.send((self.index, Event::Failed(error)));
        false
    }
}
