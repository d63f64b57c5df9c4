//! Rate limits for outbound sends: one per channel (the platform's per-bot
//! / per-page / per-number limit) and one per chat.
//!
//! A chat's replies all go out from the replica that holds its outbox
//! partition, so per-chat buckets live in that process. A channel's limit
//! is shared by every replica, so with Redis it is one GCRA cell in Redis
//! (`sb:v1:rate:{channel}`); should Redis not answer, the local bucket
//! keeps pacing rather than stopping replies.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use switchboard_model::{ChatId, Platform};

use crate::digest::{DigestMap, Digester};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    /// Tokens available at once.
    pub burst: f64,
    /// Tokens added per second.
    pub per_second: f64,
}

/// A channel's send rate: `[sender] <platform>_per_second` (by default
/// the platforms' limits from PLATFORMS.md: Telegram ~30 msg/s per bot,
/// Messenger 300 calls/s per page, WhatsApp 80 msg/s per number), with a
/// burst of one second's worth.
pub fn channel_rate(per_second: f64) -> Rate {
    Rate {
        burst: per_second.max(1.0),
        per_second,
    }
}

/// A short burst lets a two- or three-part answer go out at once; the steady
/// rate keeps within the per-chat limits.
pub fn chat_rate(platform: Platform, chat: &ChatId) -> Rate {
    match (platform, chat) {
        (Platform::Telegram, ChatId::Int(id)) if *id < 0 => Rate {
            burst: 3.0,
            per_second: 20.0 / 60.0,
        },
        (Platform::Telegram, _) => Rate {
            burst: 3.0,
            per_second: 1.0,
        },
        (Platform::Messenger | Platform::WhatsApp, _) => Rate {
            burst: 5.0,
            per_second: 1.0,
        },
    }
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    last: Instant,
    rate: Rate,
}

impl Bucket {
    fn new(rate: Rate, now: Instant) -> Self {
        Bucket {
            tokens: rate.burst,
            last: now,
            rate,
        }
    }

    fn has_token(&self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        (self.tokens + elapsed * self.rate.per_second).min(self.rate.burst) >= 1.0
    }

    /// Idle long enough to be full again: forgetting it changes nothing.
    fn is_full(&self, now: Instant) -> bool {
        self.tokens + now.saturating_duration_since(self.last).as_secs_f64() * self.rate.per_second
            >= self.rate.burst
    }

    /// Takes a token if one is there; else says how long until one is.
    fn take(&mut self, now: Instant) -> Option<Duration> {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate.per_second).min(self.rate.burst);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            None
        } else {
            Some(Duration::from_secs_f64(
                (1.0 - self.tokens) / self.rate.per_second,
            ))
        }
    }
}

/// Buckets by key, created on first use and forgotten when idle and full.
/// Keyed by a digest of the key, not the key: one bucket per chat seen
/// recently is most of what a limiter holds. Two keys sharing a digest
/// (about 1 in 10^14 at the prune limit) would share a bucket, which only
/// paces them together.
#[derive(Debug, Default)]
pub struct KeyedLimiter {
    digester: Digester,
    buckets: Mutex<Buckets>,
}

/// Buckets kept before the full (idle) ones are dropped: one per sender
/// seen recently, so memory follows recent senders, not all senders ever.
const PRUNE_ABOVE: usize = 100_000;

#[derive(Debug, Default)]
struct Buckets {
    map: DigestMap<Bucket>,
    /// Size at which the next prune runs. After a prune that kept many
    /// (more busy senders than [`PRUNE_ABOVE`]) it is twice what was kept,
    /// so a flood of distinct senders costs one scan per doubling, not one
    /// scan of the whole map per message.
    prune_at: usize,
}

impl KeyedLimiter {
    fn buckets(&self, now: Instant) -> std::sync::MutexGuard<'_, Buckets> {
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if buckets.map.len() > buckets.prune_at.max(PRUNE_ABOVE) {
            buckets.map.retain(|_, bucket| !bucket.is_full(now));
            buckets.prune_at = buckets.map.len().saturating_mul(2);
        }
        buckets
    }

    /// Waits until `key` may send one more message at `rate`.
    pub async fn acquire(&self, key: &str, rate: Rate) {
        loop {
            let wait = {
                let now = Instant::now();
                let slot = self.digester.digest(key);
                self.buckets(now)
                    .map
                    .entry(slot)
                    .or_insert_with(|| Bucket::new(rate, now))
                    .take(now)
            };
            match wait {
                None => return,
                Some(wait) => tokio::time::sleep(wait).await,
            }
        }
    }
}

/// GCRA in one round trip: KEYS[1] holds the theoretical arrival time
/// (ms); ARGV[1] is the interval between tokens (ms), ARGV[2] the burst.
/// Returns 0 when a token was taken, else the milliseconds to wait.
const GCRA: &str = r"
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local tolerance = interval * (burst - 1)
if now < tat - tolerance then
  return math.ceil(tat - tolerance - now)
end
local next_tat = tat + interval
redis.call('SET', KEYS[1], tostring(next_tat), 'PX', math.ceil(next_tat - now) + 1000)
return 0
";

/// Two GCRA cells at once, both or neither: KEYS[1] with ARGV[1..2] (a
/// sender), then KEYS[2] with ARGV[3..4] (its channel). One round trip and
/// one script run instead of two, and a sender turned away by the channel
/// limit keeps its token. Returns 0 when both tokens were taken.
const GCRA_PAIR: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local function cell(key, interval, burst)
  local tat = tonumber(redis.call('GET', key) or now)
  if tat < now then tat = now end
  local tolerance = interval * (burst - 1)
  if now < tat - tolerance then
    return nil, math.ceil(tat - tolerance - now)
  end
  return tat + interval, 0
end
local first, wait = cell(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]))
if not first then return wait end
local second, wait2 = cell(KEYS[2], tonumber(ARGV[3]), tonumber(ARGV[4]))
if not second then return wait2 end
redis.call('SET', KEYS[1], tostring(first), 'PX', math.ceil(first - now) + 1000)
redis.call('SET', KEYS[2], tostring(second), 'PX', math.ceil(second - now) + 1000)
return 0
";

/// A channel limit shared by every replica through Redis.
pub struct SharedLimiter {
    store: std::sync::Arc<crate::store::RedisStore>,
    script: redis::Script,
    pair: redis::Script,
    fallback: KeyedLimiter,
}

impl std::fmt::Debug for SharedLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedLimiter").finish_non_exhaustive()
    }
}

impl SharedLimiter {
    pub fn new(store: std::sync::Arc<crate::store::RedisStore>) -> Self {
        Self {
            store,
            script: redis::Script::new(GCRA),
            pair: redis::Script::new(GCRA_PAIR),
            fallback: KeyedLimiter::default(),
        }
    }

    /// Waits until `key` may send one more message at `rate`, counted across
    /// every replica.
    pub async fn acquire(&self, key: &str, rate: Rate) {
        let redis_key = self.store.key(&format!("sb:v1:rate:{{{key}}}"));
        let interval_ms = 1000.0 / rate.per_second;
        loop {
            let mut connection = self.store.connection();
            let wait: Result<u64, _> = self
                .store
                .call(
                    "rate limit",
                    self.script
                        .key(&redis_key)
                        .arg(interval_ms)
                        .arg(rate.burst)
                        .invoke_async(&mut connection),
                )
                .await;
            match wait {
                Ok(0) => return,
                Ok(ms) => tokio::time::sleep(Duration::from_millis(ms.min(60_000))).await,
                Err(_) => return self.fallback.acquire(key, rate).await,
            }
        }
    }
}

impl SharedLimiter {
    /// Takes a token from `first` and one from `second`, or neither. Both
    /// keys carry `tag` as their hash tag, so on a cluster they share a
    /// slot and one script can touch both.
    pub async fn try_acquire_pair(
        &self,
        tag: &str,
        first: (&str, Rate),
        second: (&str, Rate),
    ) -> bool {
        let key = |name: &str| self.store.key(&format!("sb:v1:rate:{{{tag}}}:{name}"));
        let mut connection = self.store.connection();
        let wait: Result<u64, _> = self
            .store
            .call(
                "rate limit",
                self.pair
                    .key(key(first.0))
                    .key(key(second.0))
                    .arg(1000.0 / first.1.per_second)
                    .arg(first.1.burst)
                    .arg(1000.0 / second.1.per_second)
                    .arg(second.1.burst)
                    .invoke_async(&mut connection),
            )
            .await;
        match wait {
            Ok(wait) => wait == 0,
            Err(_) => self.fallback.try_acquire_pair(tag, first, second),
        }
    }
}

impl KeyedLimiter {
    /// Local [`SharedLimiter::try_acquire_pair`]: checks both before taking
    /// either.
    pub fn try_acquire_pair(&self, tag: &str, first: (&str, Rate), second: (&str, Rate)) -> bool {
        let first_slot = self.digester.digest((tag, first.0));
        let second_slot = self.digester.digest((tag, second.0));
        let now = Instant::now();
        let mut buckets = self.buckets(now);
        for (slot, rate) in [(first_slot, first.1), (second_slot, second.1)] {
            let bucket = buckets
                .map
                .entry(slot)
                .or_insert_with(|| Bucket::new(rate, now));
            if !bucket.has_token(now) {
                return false;
            }
        }
        for slot in [first_slot, second_slot] {
            if let Some(bucket) = buckets.map.get_mut(&slot) {
                let _ = bucket.take(now);
            }
        }
        true
    }
}

/// Per-channel limiting: local, or shared through Redis.
#[derive(Debug)]
pub enum ChannelLimiter {
    Local(KeyedLimiter),
    Shared(SharedLimiter),
}

impl ChannelLimiter {
    pub fn for_store(store: &crate::store::Store) -> Self {
        match store.as_redis() {
            Some(redis) => ChannelLimiter::Shared(SharedLimiter::new(redis.clone())),
            None => ChannelLimiter::Local(KeyedLimiter::default()),
        }
    }

    pub async fn acquire(&self, key: &str, rate: Rate) {
        match self {
            ChannelLimiter::Local(limiter) => limiter.acquire(key, rate).await,
            ChannelLimiter::Shared(limiter) => limiter.acquire(key, rate).await,
        }
    }

    /// Both tokens or neither; see [`SharedLimiter::try_acquire_pair`].
    pub async fn try_acquire_pair(
        &self,
        tag: &str,
        first: (&str, Rate),
        second: (&str, Rate),
    ) -> bool {
        match self {
            ChannelLimiter::Local(limiter) => limiter.try_acquire_pair(tag, first, second),
            ChannelLimiter::Shared(limiter) => limiter.try_acquire_pair(tag, first, second).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_burst_then_paces() {
        let now = Instant::now();
        let mut bucket = Bucket {
            tokens: 3.0,
            last: now,
            rate: Rate {
                burst: 3.0,
                per_second: 1.0,
            },
        };
        assert!(bucket.take(now).is_none());
        assert!(bucket.take(now).is_none());
        assert!(bucket.take(now).is_none());
        let wait = bucket.take(now).unwrap();
        assert!(wait > Duration::from_millis(900) && wait <= Duration::from_secs(1));
        assert!(bucket.take(now + Duration::from_secs(1)).is_none());
    }

    #[test]
    fn idle_buckets_are_dropped_and_a_flood_of_busy_ones_is_not_scanned_per_message() {
        let limiter = KeyedLimiter::default();
        let slow = Rate {
            burst: 1.0,
            per_second: 0.001,
        };
        let fast = Rate {
            burst: 1.0,
            per_second: 1e9,
        };
        // Busy senders: each took its one token, so none is full again.
        for n in 0..=PRUNE_ABOVE {
            assert!(limiter.try_acquire_pair("in", (&n.to_string(), slow), ("c", fast)));
        }
        let kept = limiter.buckets(Instant::now()).map.len();
        assert_eq!(
            kept,
            PRUNE_ABOVE + 2,
            "every busy sender and the channel kept"
        );
        let prune_at = limiter.buckets(Instant::now()).prune_at;
        assert!(prune_at >= 2 * PRUNE_ABOVE, "{prune_at}");
        // The next busy sender does not trigger another scan...
        assert!(limiter.try_acquire_pair("in", ("one more", slow), ("c", fast)));
        assert_eq!(limiter.buckets(Instant::now()).prune_at, prune_at);
        assert!(
            !limiter.try_acquire_pair("in", ("7", slow), ("c", fast)),
            "still paced"
        );

        // ...and idle senders are dropped once the map is over the limit.
        let idle = KeyedLimiter::default();
        for n in 0..=PRUNE_ABOVE + 10 {
            assert!(idle.try_acquire_pair("in", (&n.to_string(), fast), ("c", fast)));
        }
        assert!(
            idle.buckets(Instant::now()).map.len() < 100,
            "full buckets forgotten"
        );
    }

    #[test]
    fn telegram_groups_are_paced_slower_than_private_chats() {
        let group = chat_rate(Platform::Telegram, &ChatId::Int(-100123));
        let private = chat_rate(Platform::Telegram, &ChatId::Int(42));
        assert!(group.per_second < private.per_second);
    }

    #[tokio::test]
    async fn a_shared_limit_holds_across_limiters_on_one_redis() {
        let server = switchboard_testkit::RedisServer::start();
        let store = crate::store::test_support::redis_store(server.url(), "", &[]).await;
        // Two replicas' limiters on one Redis: together no faster than the rate.
        let a = SharedLimiter::new(store.clone());
        let b = SharedLimiter::new(store);
        let rate = Rate {
            burst: 2.0,
            per_second: 20.0,
        };
        let start = Instant::now();
        for _ in 0..3 {
            a.acquire("channel", rate).await;
            b.acquire("channel", rate).await;
        }
        // Six tokens at burst 2 and 20/s: four waits of 50 ms.
        assert!(
            start.elapsed() >= Duration::from_millis(190),
            "{:?}",
            start.elapsed()
        );
    }

    async fn check_pairs(limiter: &ChannelLimiter) {
        let slow = Rate {
            burst: 1.0,
            per_second: 0.01,
        };
        let channel = Rate {
            burst: 4.0,
            per_second: 0.01,
        };
        assert!(
            limiter
                .try_acquire_pair("in:t:c", ("s:a", slow), ("c", channel))
                .await
        );
        // The sender is spent; the channel keeps the token it did not give.
        for _ in 0..3 {
            assert!(
                !limiter
                    .try_acquire_pair("in:t:c", ("s:a", slow), ("c", channel))
                    .await
            );
        }
        for sender in ["s:b", "s:c", "s:d"] {
            assert!(
                limiter
                    .try_acquire_pair("in:t:c", (sender, slow), ("c", channel))
                    .await,
                "{sender}"
            );
        }
        // Four senders took the channel's four; a fifth is turned away and
        // keeps its own token for later.
        assert!(
            !limiter
                .try_acquire_pair("in:t:c", ("s:e", slow), ("c", channel))
                .await
        );
        assert!(
            limiter
                .try_acquire_pair("in:t:other", ("s:e", slow), ("c", channel))
                .await
        );
    }

    #[tokio::test]
    async fn a_sender_and_its_channel_are_charged_together_or_not_at_all() {
        check_pairs(&ChannelLimiter::Local(KeyedLimiter::default())).await;
        let server = switchboard_testkit::RedisServer::start();
        let store = crate::store::test_support::redis_store(server.url(), "", &[]).await;
        check_pairs(&ChannelLimiter::Shared(SharedLimiter::new(store))).await;
    }

    #[tokio::test]
    async fn acquire_waits_once_the_burst_is_spent() {
        let limiter = KeyedLimiter::default();
        let rate = Rate {
            burst: 2.0,
            per_second: 20.0,
        };
        let start = Instant::now();
        for _ in 0..4 {
            limiter.acquire("chat", rate).await;
        }
        // Two immediate, two more at 50 ms intervals.
        assert!(start.elapsed() >= Duration::from_millis(90));
    }
}
