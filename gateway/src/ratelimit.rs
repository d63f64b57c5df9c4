//! Rate limits for outbound sends: one per channel (the platform's per-bot
//! / per-page / per-number limit) and one per chat; and the inbound abuse
//! limits: one per sender and one per channel.
//!
//! A chat's replies all go out from the replica that holds its outbox
//! partition, and a conversation's events are all handled by the replica
//! that holds its inbox partition, so per-chat and per-sender buckets live
//! in that process. A channel's limit is shared by every replica, so with
//! Redis it is one GCRA cell in Redis (`sb:v1:rate:{channel}`, inbound
//! `sb:v1:rate:{in:<platform>:<channel>:c}`); should Redis not answer, the
//! local bucket keeps pacing rather than stopping replies. This module
//! decides nothing about what a limited event gets (the pipeline does).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use switchboard_model::{ChatId, Platform};

use crate::config::SendRates;

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
/// rate (`[sender] chat_per_second`, `group_per_minute`: by default about
/// one a second per person and 20 a minute per Telegram group) keeps within
/// the platforms' per-chat limits.
pub fn chat_rate(platform: Platform, chat: &ChatId, rates: &SendRates) -> Rate {
    match (platform, chat) {
        (Platform::Telegram, ChatId::Int(id)) if *id < 0 => Rate {
            burst: 3.0,
            per_second: rates.group_per_minute / 60.0,
        },
        (Platform::Telegram, _) => Rate {
            burst: 3.0,
            per_second: rates.chat,
        },
        (Platform::Messenger | Platform::WhatsApp, _) => Rate {
            burst: 5.0,
            per_second: rates.chat,
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
            match self.with_bucket(key, rate, |bucket, now| bucket.take(now)) {
                None => return,
                Some(wait) => tokio::time::sleep(wait).await,
            }
        }
    }
}

/// GCRA in one round trip, taking up to ARGV[3] tokens at once: KEYS[1]
/// holds the theoretical arrival time (ms); ARGV[1] is the interval between
/// tokens (ms), ARGV[2] the burst. A token is free while the arrival time
/// is within the burst's tolerance of now; each one taken moves it on by
/// one interval. Returns {tokens taken, ms to wait when none was free}.
const GCRA_TAKE: &str = r"
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local want = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local tolerance = interval * (burst - 1)
if now < tat - tolerance then
  return {0, math.ceil(tat - tolerance - now)}
end
local take = math.min(want, math.floor((now + tolerance - tat) / interval) + 1)
local next_tat = tat + take * interval
redis.call('SET', KEYS[1], tostring(next_tat), 'PX', math.ceil(next_tat - now) + 1000)
return {take, 0}
";

/// How far ahead a replica takes a fast channel's send tokens: one script
/// run takes what the rate allows in this window (when the burst has
/// them), and the sends in it use them without asking Redis. At the
/// platforms' default rates that is one token a call, as before (30/s and
/// 80/s give less than one per window; Messenger's 300/s three); a raised
/// rate (a WhatsApp throughput tier, a load test) stops costing a round
/// trip per send. Tokens left when the window ends are dropped, never
/// carried over, so a replica sends at most one window's worth ahead of
/// the shared count.
const LEASE_WINDOW: Duration = Duration::from_millis(10);

/// Tokens a replica holds for one key: what a script run took, usable
/// until the window ends.
#[derive(Debug)]
struct Lease {
    left: u64,
    until: Instant,
}

/// A channel limit shared by every replica through Redis.
pub struct SharedLimiter {
    store: std::sync::Arc<crate::store::RedisStore>,
    script: redis::Script,
    fallback: KeyedLimiter,
    /// Inbound senders' buckets: kept here alone (see
    /// [`SharedLimiter::try_acquire_pair`]).
    senders: KeyedLimiter,
    /// Tokens taken ahead, by key (see [`LEASE_WINDOW`]). One lock per
    /// key, held across the refill, so lanes sending on one channel wait
    /// for one script run instead of each taking a window's worth.
    leases: Mutex<HashMap<String, std::sync::Arc<tokio::sync::Mutex<Lease>>>>,
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
            script: redis::Script::new(GCRA_TAKE),
            fallback: KeyedLimiter::default(),
            senders: KeyedLimiter::default(),
            leases: Mutex::new(HashMap::new()),
        }
    }

    /// Waits until `key` may send one more message at `rate`, counted across
    /// every replica. A rate fast enough to give more than one token per
    /// [`LEASE_WINDOW`] takes them a window at a time.
    pub async fn acquire(&self, key: &str, rate: Rate) {
        let batch = lease_batch(rate);
        if batch <= 1 {
            return self.acquire_one(key, rate).await;
        }
        let lease = self.lease(key);
        let mut lease = lease.lock().await;
        loop {
            if lease.left > 0 && Instant::now() < lease.until {
                lease.left -= 1;
                return;
            }
            let asked = Instant::now();
            match self.take(key, rate, batch).await {
                Ok(Ok(taken)) => {
                    // One for this send, the rest for the window.
                    lease.left = taken - 1;
                    lease.until = asked + LEASE_WINDOW;
                    return;
                }
                // At the limit: wait for a window's worth to build up
                // (tokens accrue with time whoever waits), or every run
                // would take the one or two freed since the last.
                Ok(Err(wait)) => tokio::time::sleep(wait.max(LEASE_WINDOW)).await,
                Err(_) => return self.fallback.acquire(key, rate).await,
            }
        }
    }

    /// As [`Self::acquire`] without waiting: whether a token was free.
    pub async fn try_acquire(&self, key: &str, rate: Rate) -> bool {
        let lease = self.lease(key);
        let mut lease = lease.lock().await;
        if lease.left > 0 && Instant::now() < lease.until {
            lease.left -= 1;
            return true;
        }
        let asked = Instant::now();
        match self.take(key, rate, lease_batch(rate)).await {
            Ok(Ok(taken)) => {
                lease.left = taken - 1;
                lease.until = asked + LEASE_WINDOW;
                true
            }
            Ok(Err(_)) => false,
            Err(_) => self.fallback.try_acquire(key, rate),
        }
    }

    /// The tokens this replica holds for `key`.
    fn lease(&self, key: &str) -> std::sync::Arc<tokio::sync::Mutex<Lease>> {
        let mut leases = self
            .leases
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        leases
            .entry(key.to_owned())
            .or_insert_with(|| {
                std::sync::Arc::new(tokio::sync::Mutex::new(Lease {
                    left: 0,
                    until: Instant::now(),
                }))
            })
            .clone()
    }

    /// [`Self::acquire`] one token at a time.
    async fn acquire_one(&self, key: &str, rate: Rate) {
        loop {
            match self.take(key, rate, 1).await {
                Ok(Ok(_)) => return,
                Ok(Err(wait)) => tokio::time::sleep(wait).await,
                Err(_) => return self.fallback.acquire(key, rate).await,
            }
        }
    }

    /// Takes up to `most` tokens (at least one, when any is free) in one
    /// script run; else says how long until one is.
    async fn take(
        &self,
        key: &str,
        rate: Rate,
        most: u64,
    ) -> Result<Result<u64, Duration>, crate::store::StoreError> {
        let redis_key = self.store.key(&format!("sb:v1:rate:{{{key}}}"));
        let mut connection = self.store.connection();
        let (taken, wait_ms): (u64, u64) = self
            .store
            .call(
                "rate limit",
                self.script
                    .key(&redis_key)
                    .arg(1000.0 / rate.per_second)
                    .arg(rate.burst)
                    .arg(most)
                    .invoke_async(&mut connection),
            )
            .await?;
        Ok(if taken > 0 {
            Ok(taken)
        } else {
            Err(Duration::from_millis(wait_ms.clamp(1, 60_000)))
        })
    }
}

/// Tokens one script run takes for `rate`: a [`LEASE_WINDOW`]'s worth,
/// never more than the burst.
fn lease_batch(rate: Rate) -> u64 {
    let window = (rate.per_second * LEASE_WINDOW.as_secs_f64()).min(rate.burst);
    if window.is_finite() && window >= 2.0 {
        window as u64
    } else {
        1
    }
}

impl SharedLimiter {
    /// An inbound event's pair: a token from its sender's bucket `first`
    /// and one from its channel's cell `second`, or neither (a sender
    /// turned away by the channel keeps its token). The sender's bucket is
    /// kept in this process: a conversation's events are all handled by
    /// the replica holding its inbox partition, so that replica alone
    /// counts its sender, and the event needs no round trip for it (a
    /// lease moving to another replica starts that sender afresh there).
    /// The channel's is shared by every replica, taken a
    /// [`LEASE_WINDOW`]'s worth at a time when its rate allows more than a
    /// token a window (`sb:v1:rate:{<tag>}`).
    pub async fn try_acquire_pair(
        &self,
        tag: &str,
        first: (&str, Rate),
        second: (&str, Rate),
    ) -> bool {
        if !self.senders.has_token(tag, first) {
            return false;
        }
        if !self
            .try_acquire(&format!("{tag}:{}", second.0), second.1)
            .await
        {
            return false;
        }
        // A sender's events are handled one at a time (one conversation,
        // one lane), so the token checked above is still there.
        self.senders.try_take(tag, first)
    }
}

impl KeyedLimiter {
    /// Runs `use_it` on `key`'s bucket (a full one if it had none).
    fn with_bucket<R>(
        &self,
        key: impl std::hash::Hash,
        rate: Rate,
        use_it: impl FnOnce(&mut Bucket, Instant) -> R,
    ) -> R {
        let slot = self.digester.digest(key);
        let now = Instant::now();
        let mut buckets = self.buckets(now);
        let bucket = buckets
            .map
            .entry(slot)
            .or_insert_with(|| Bucket::new(rate, now));
        use_it(bucket, now)
    }

    /// Whether `key` (under `tag`) has a token, without taking it.
    fn has_token(&self, tag: &str, (key, rate): (&str, Rate)) -> bool {
        self.with_bucket((tag, key), rate, |bucket, now| bucket.has_token(now))
    }

    /// Takes a token from `key` (under `tag`) when it has one.
    fn try_take(&self, tag: &str, (key, rate): (&str, Rate)) -> bool {
        self.with_bucket((tag, key), rate, |bucket, now| bucket.take(now).is_none())
    }

    /// A token from `key` if one is free now.
    pub fn try_acquire(&self, key: &str, rate: Rate) -> bool {
        self.with_bucket(key, rate, |bucket, now| bucket.take(now).is_none())
    }

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
        let rates = SendRates {
            telegram: 30.0,
            messenger: 300.0,
            whatsapp: 80.0,
            chat: 1.0,
            group_per_minute: 20.0,
        };
        let group = chat_rate(Platform::Telegram, &ChatId::Int(-100123), &rates);
        let private = chat_rate(Platform::Telegram, &ChatId::Int(42), &rates);
        assert!(group.per_second < private.per_second);
        assert!((private.per_second - 1.0).abs() < f64::EPSILON);
        assert!((group.per_second - 20.0 / 60.0).abs() < f64::EPSILON);
        let meta = chat_rate(
            Platform::WhatsApp,
            &ChatId::Str("15550001111".into()),
            &rates,
        );
        assert!((meta.per_second - 1.0).abs() < f64::EPSILON);
        assert!(meta.burst > group.burst);
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

    #[test]
    fn only_rates_faster_than_a_token_per_window_are_taken_ahead() {
        let rate = |per_second: f64, burst: f64| Rate { burst, per_second };
        // The platforms' defaults: Telegram 30/s, WhatsApp 80/s, Messenger 300/s.
        assert_eq!(lease_batch(rate(30.0, 30.0)), 1);
        assert_eq!(lease_batch(rate(80.0, 80.0)), 1);
        assert_eq!(lease_batch(rate(300.0, 300.0)), 3);
        // A raised rate: a window's worth, capped by the burst.
        assert_eq!(lease_batch(rate(100_000.0, 100_000.0)), 1_000);
        assert_eq!(lease_batch(rate(100_000.0, 5.0)), 5);
        assert_eq!(lease_batch(rate(f64::INFINITY, f64::INFINITY)), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_fast_shared_limit_takes_tokens_a_window_at_a_time_and_still_holds() {
        let server = switchboard_testkit::RedisServer::start();
        let store = crate::store::test_support::redis_store(server.url(), "", &[]).await;
        let a = std::sync::Arc::new(SharedLimiter::new(store.clone()));
        let b = std::sync::Arc::new(SharedLimiter::new(store));
        // 2 000/s with a burst of 40: 20 tokens per 10 ms window.
        let rate = Rate {
            burst: 40.0,
            per_second: 2_000.0,
        };
        let scripts = || -> u64 {
            let info: String = redis::cmd("INFO")
                .arg("commandstats")
                .query(&mut server.connection())
                .unwrap();
            info.lines()
                .find_map(|line| line.strip_prefix("cmdstat_evalsha:calls="))
                .and_then(|rest| rest.split(',').next())
                .and_then(|calls| calls.parse().ok())
                .unwrap_or(0)
        };
        let before = scripts();
        let start = Instant::now();
        // Eight lanes on each of two replicas, 50 sends each: 800 in all.
        let mut lanes = Vec::new();
        for limiter in [&a, &b] {
            for _ in 0..8 {
                let limiter = limiter.clone();
                lanes.push(tokio::spawn(async move {
                    for _ in 0..50 {
                        limiter.acquire("fast-channel", rate).await;
                    }
                }));
            }
        }
        for lane in lanes {
            lane.await.unwrap();
        }
        let elapsed = start.elapsed();
        let calls = scripts() - before;
        // Never faster than the shared rate: 800 tokens, 40 at once, the
        // rest at 2 000/s, and each replica at most one window ahead.
        let floor = Duration::from_secs_f64((800.0 - 40.0 - 2.0 * 20.0) / 2_000.0);
        assert!(elapsed >= floor, "{elapsed:?} < {floor:?}");
        // Far fewer script runs than sends (one per send before, and as
        // many again for the waits).
        assert!(calls <= 800 / 4, "{calls} script runs for 800 sends");
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

    /// On Redis an inbound event's sender is counted in this process (the
    /// replica holding its conversation's partition is the only one that
    /// sees it) and its channel in Redis, a window's worth at a time when
    /// the rate allows: no sender cell in Redis, a script run per window
    /// rather than per event, and the channel's limit holds across
    /// replicas.
    #[tokio::test]
    async fn inbound_senders_are_counted_here_and_channels_in_redis_a_window_at_a_time() {
        let server = switchboard_testkit::RedisServer::start();
        assert!(server.is_private(), "counts this Redis's script runs");
        let store = crate::store::test_support::redis_store(server.url(), "", &[]).await;
        let (one, other) = (
            SharedLimiter::new(store.clone()),
            SharedLimiter::new(store.clone()),
        );
        let sender = Rate {
            burst: 5.0,
            per_second: 0.5,
        };
        let fast = Rate {
            burst: 1000.0,
            per_second: 10_000.0,
        };
        let mut connection = server.connection();
        let _: () = redis::cmd("CONFIG")
            .arg("RESETSTAT")
            .query(&mut connection)
            .unwrap();
        let started = Instant::now();
        for n in 0..50 {
            let who = format!("s:{n}");
            assert!(
                one.try_acquire_pair("in:t:c", (&who, sender), ("c", fast))
                    .await
            );
        }
        // At most one run a window (a slow machine may need several), and
        // the first is asked twice (NOSCRIPT, then with the script loaded).
        let windows = started.elapsed().as_millis() / LEASE_WINDOW.as_millis() + 2;
        let stats: String = redis::cmd("INFO")
            .arg("commandstats")
            .query(&mut connection)
            .unwrap();
        let runs: u64 = stats
            .lines()
            .find_map(|line| line.strip_prefix("cmdstat_evalsha:calls="))
            .and_then(|rest| rest.split(',').next())
            .and_then(|calls| calls.parse().ok())
            .unwrap_or(0);
        assert!(
            runs >= 1 && u128::from(runs) <= windows && runs < 50,
            "{runs} script runs for 50 events in {windows} windows"
        );
        let keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut connection).unwrap();
        assert_eq!(keys, ["sb:v1:rate:{in:t:c:c}"], "only the channel's cell");

        // A slow channel: its burst is shared by both replicas.
        let slow = Rate {
            burst: 3.0,
            per_second: 0.01,
        };
        let mut allowed = 0;
        for n in 0..6 {
            let limiter = if n % 2 == 0 { &one } else { &other };
            let who = format!("s:{n}");
            if limiter
                .try_acquire_pair("in:t:slow", (&who, sender), ("c", slow))
                .await
            {
                allowed += 1;
            }
        }
        assert_eq!(allowed, 3, "the channel's burst, across replicas");
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
