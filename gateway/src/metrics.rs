//! Prometheus metrics. Labels are closed sets (platform, result, reason
//! labels from the code): never user ids, chat ids, channel secrets or text.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PlatformResult {
    pub platform: &'static str,
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PlatformReason {
    pub platform: &'static str,
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PlatformLabel {
    pub platform: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueueLabel {
    pub queue: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceLabel {
    pub source: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ScopeLabel {
    pub scope: &'static str,
}

fn latency_histogram() -> Histogram {
    // 0.1 ms .. ~3 s
    Histogram::new(exponential_buckets(0.0001, 2.5, 12))
}

#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Webhook requests by platform and result (`accepted`, `duplicate`,
    /// `unauthorized`, `unknown_channel`, `too_large`, `unparseable`,
    /// `unavailable`, `busy`).
    pub webhooks: Family<PlatformResult, Counter>,
    pub verification_failures: Family<PlatformReason, Counter>,
    pub events: Family<PlatformResult, Counter>,
    pub event_seconds: Family<PlatformLabel, Histogram, fn() -> Histogram>,
    pub sends: Family<PlatformResult, Counter>,
    pub send_seconds: Family<PlatformLabel, Histogram, fn() -> Histogram>,
    pub queue_depth: Family<QueueLabel, Gauge>,
    pub dead_letters: Family<ReasonLabel, Counter>,
    pub unclaimed_entries: Family<PlatformLabel, Counter>,
    /// Dead letters currently stored (refreshed on each scrape).
    pub dead_letters_stored: Gauge,
    pub handoffs: Counter,
    /// Channels in use, by where they are defined (`config`, `store`).
    pub channels: Family<SourceLabel, Gauge>,
    /// Failed reloads of the run-time channels from the store.
    pub channel_refresh_failures: Counter,
    /// One-time codes refused by the hourly send cap, by which cap
    /// (`account`, `conversation`).
    pub link_codes_capped: Family<ScopeLabel, Counter>,
    /// Inbox events read in the same round trip as the commit of the
    /// event before them in their lane (Redis store).
    pub reads_ahead: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("switchboard");
        let webhooks = Family::<PlatformResult, Counter>::default();
        registry.register(
            "webhooks",
            "Webhook requests by platform and result",
            webhooks.clone(),
        );
        let verification_failures = Family::<PlatformReason, Counter>::default();
        registry.register(
            "webhook_verification_failures",
            "Webhooks refused as not coming from the platform",
            verification_failures.clone(),
        );
        let events = Family::<PlatformResult, Counter>::default();
        registry.register(
            "events",
            "Inbound events processed, by kind of outcome",
            events.clone(),
        );
        let event_seconds: Family<PlatformLabel, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(latency_histogram);
        registry.register(
            "event_processing_seconds",
            "Time from acknowledgement to the assistant's decision for one event",
            event_seconds.clone(),
        );
        let sends = Family::<PlatformResult, Counter>::default();
        registry.register(
            "outbound_sends",
            "Send API calls by platform and result",
            sends.clone(),
        );
        let send_seconds: Family<PlatformLabel, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(latency_histogram);
        registry.register(
            "outbound_send_seconds",
            "Send API call latency",
            send_seconds.clone(),
        );
        let queue_depth = Family::<QueueLabel, Gauge>::default();
        registry.register(
            "queue_depth",
            "Items waiting in the inbox and outbox",
            queue_depth.clone(),
        );
        let dead_letters = Family::<ReasonLabel, Counter>::default();
        registry.register(
            "dead_letters",
            "Items moved to the dead-letter list",
            dead_letters.clone(),
        );
        let unclaimed_entries = Family::<PlatformLabel, Counter>::default();
        registry.register(
            "unclaimed_entries",
            "Meta entries for a page or number no channel claims",
            unclaimed_entries.clone(),
        );
        let dead_letters_stored = Gauge::default();
        registry.register(
            "dead_letters_stored",
            "Dead letters currently kept for operators",
            dead_letters_stored.clone(),
        );
        let handoffs = Counter::default();
        registry.register(
            "handoffs",
            "Conversations handed to a person",
            handoffs.clone(),
        );
        let channels = Family::<SourceLabel, Gauge>::default();
        registry.register(
            "channels",
            "Channels in use, by where they are defined",
            channels.clone(),
        );
        let channel_refresh_failures = Counter::default();
        registry.register(
            "channel_refresh_failures",
            "Failed reloads of run-time channels from the store",
            channel_refresh_failures.clone(),
        );
        let link_codes_capped = Family::<ScopeLabel, Counter>::default();
        registry.register(
            "link_codes_capped",
            "One-time codes refused by the hourly send cap, by cap",
            link_codes_capped.clone(),
        );
        let reads_ahead = Counter::default();
        registry.register(
            "inbox_reads_ahead",
            "Inbox events read together with the commit of the event before them",
            reads_ahead.clone(),
        );
        Self {
            registry,
            webhooks,
            verification_failures,
            events,
            event_seconds,
            sends,
            send_seconds,
            queue_depth,
            dead_letters,
            unclaimed_entries,
            dead_letters_stored,
            handoffs,
            channels,
            channel_refresh_failures,
            link_codes_capped,
            reads_ahead,
        }
    }

    pub fn webhook(&self, platform: &'static str, result: &'static str) {
        self.webhooks
            .get_or_create(&PlatformResult { platform, result })
            .inc();
    }

    pub fn queue(&self, queue: &'static str) -> Gauge {
        self.queue_depth
            .get_or_create(&QueueLabel { queue })
            .clone()
    }

    pub fn channels(&self, source: &'static str) -> Gauge {
        self.channels.get_or_create(&SourceLabel { source }).clone()
    }

    pub fn dead_letter(&self, reason: &'static str) {
        self.dead_letters
            .get_or_create(&ReasonLabel { reason })
            .inc();
    }

    pub fn link_code_capped(&self, scope: &'static str) {
        self.link_codes_capped
            .get_or_create(&ScopeLabel { scope })
            .inc();
    }

    /// Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(8192);
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}
