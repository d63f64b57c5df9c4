//! Latency histograms and the event ledger that turns replies into the
//! correctness counters (never answered, answered twice, out of order).

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Log-linear histogram of microseconds: 32 sub-buckets per power of two,
/// so a percentile is within about 3% of the true value, in constant memory
/// however long the run.
#[derive(Debug, Clone)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
}

const SUB_BITS: u32 = 5;
const SUB: u64 = 1 << SUB_BITS;

impl Default for Histogram {
    fn default() -> Self {
        Self {
            counts: vec![0; (64 * SUB) as usize],
            total: 0,
        }
    }
}

impl Histogram {
    fn index(micros: u64) -> usize {
        if micros < SUB {
            return micros as usize;
        }
        let power = 63 - u64::from(micros.leading_zeros());
        let shift = power - u64::from(SUB_BITS);
        let sub = (micros >> shift) - SUB;
        ((shift + 1) * SUB + sub) as usize
    }

    fn lower_bound(index: usize) -> u64 {
        let index = index as u64;
        if index < SUB {
            return index;
        }
        let shift = index / SUB - 1;
        (SUB + index % SUB) << shift
    }

    pub fn record(&mut self, value: Duration) {
        let micros = u64::try_from(value.as_micros()).unwrap_or(u64::MAX);
        let index = Self::index(micros).min(self.counts.len() - 1);
        self.counts[index] += 1;
        self.total += 1;
    }

    pub fn count(&self) -> u64 {
        self.total
    }

    /// The value below which `quantile` (0..1) of the samples lie.
    pub fn percentile(&self, quantile: f64) -> Duration {
        if self.total == 0 {
            return Duration::ZERO;
        }
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss
        )]
        let rank = ((self.total as f64) * quantile).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (index, count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return Duration::from_micros(Self::lower_bound(index));
            }
        }
        Duration::from_micros(Self::lower_bound(self.counts.len() - 1))
    }

    pub fn merge(&mut self, other: &Histogram) {
        for (mine, theirs) in self.counts.iter_mut().zip(&other.counts) {
            *mine += theirs;
        }
        self.total += other.total;
    }
}

/// One tracked event: a customer message whose reply must mention its token.
#[derive(Debug)]
struct Event {
    chat: u32,
    sent: Instant,
    /// Place in the chat's delivery order. A chat's webhooks go out one at
    /// a time, so this is the order the gateway received them in (the
    /// simulator's deliberate reordering included), which is the order the
    /// replies must come back in.
    position: u64,
    acked: bool,
    replies: u32,
    /// The fake API refused its reply on purpose (blocked bot, outside the
    /// window): the gateway did all it could.
    refused: bool,
}

#[derive(Debug, Default)]
struct Chat {
    sent: u64,
    last_answered: Option<u64>,
}

/// What happened to a reply the fake API received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyVerdict {
    First { latency: Duration },
    Duplicate,
    Unknown,
}

/// Every tracked event, keyed by its token.
#[derive(Debug, Default)]
pub struct Ledger {
    events: HashMap<u64, Event>,
    chats: HashMap<u32, Chat>,
    pub answered_twice: u64,
    pub out_of_order: u64,
    /// Acknowledged events without a reply yet.
    waiting: u64,
}

impl Ledger {
    /// Records the first delivery attempt of `token`, which fixes its place
    /// in the chat's order.
    pub fn sent(&mut self, token: u64, chat: u32, at: Instant) {
        if self.events.contains_key(&token) {
            return;
        }
        let state = self.chats.entry(chat).or_default();
        let position = state.sent;
        state.sent += 1;
        self.events.insert(
            token,
            Event {
                chat,
                sent: at,
                position,
                acked: false,
                replies: 0,
                refused: false,
            },
        );
    }

    /// The gateway answered 2xx for the webhook carrying `token`.
    pub fn acked(&mut self, token: u64) {
        if let Some(event) = self.events.get_mut(&token)
            && !event.acked
        {
            event.acked = true;
            if event.replies == 0 {
                self.waiting += 1;
            }
        }
    }

    /// Is `token` one of ours?
    pub fn knows(&self, token: u64) -> bool {
        self.events.contains_key(&token)
    }

    pub fn replied(&mut self, token: u64, refused: bool, at: Instant) -> ReplyVerdict {
        let Some(event) = self.events.get_mut(&token) else {
            return ReplyVerdict::Unknown;
        };
        event.replies += 1;
        if event.replies > 1 {
            self.answered_twice += 1;
            return ReplyVerdict::Duplicate;
        }
        event.refused = refused;
        if event.acked {
            self.waiting -= 1;
        }
        let chat = self.chats.entry(event.chat).or_default();
        match chat.last_answered {
            Some(last) if event.position < last => self.out_of_order += 1,
            _ => chat.last_answered = Some(event.position),
        }
        ReplyVerdict::First {
            latency: at.saturating_duration_since(event.sent),
        }
    }

    /// Acknowledged events still waiting for their reply.
    pub fn outstanding(&self) -> u64 {
        self.waiting
    }

    /// Replies the fake API refused on purpose.
    pub fn refused(&self) -> u64 {
        self.events.values().filter(|e| e.refused).count() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_within_a_few_percent() {
        let mut histogram = Histogram::default();
        for micros in 1..=10_000u64 {
            histogram.record(Duration::from_micros(micros));
        }
        let p50 = histogram.percentile(0.5).as_micros() as f64;
        let p99 = histogram.percentile(0.99).as_micros() as f64;
        assert!((p50 - 5000.0).abs() / 5000.0 < 0.04, "p50 {p50}");
        assert!((p99 - 9900.0).abs() / 9900.0 < 0.04, "p99 {p99}");
    }

    #[test]
    fn a_reply_to_an_earlier_acknowledged_event_after_a_later_one_is_out_of_order() {
        let mut ledger = Ledger::default();
        let now = Instant::now();
        for token in [1, 2, 3] {
            ledger.sent(token, 7, now);
            ledger.acked(token);
        }
        ledger.replied(2, false, now);
        ledger.replied(1, false, now);
        ledger.replied(3, false, now);
        ledger.replied(3, false, now);
        assert_eq!(ledger.out_of_order, 1);
        assert_eq!(ledger.answered_twice, 1);
        assert_eq!(ledger.outstanding(), 0);
    }

    #[test]
    fn an_acknowledged_event_without_a_reply_is_outstanding() {
        let mut ledger = Ledger::default();
        ledger.sent(1, 1, Instant::now());
        ledger.sent(2, 1, Instant::now());
        ledger.acked(1);
        assert_eq!(ledger.outstanding(), 1);
    }
}
