use std::fmt;

use crate::capabilities::Capabilities;
use crate::error::{HandshakeError, ParseError, RenderError, VerifyError};
use crate::event::InboundEvent;
use crate::ids::{ChannelId, Platform};
use crate::outbound::{OutboundMessage, PlatformRequest, SendOutcome};

/// Read-only, case-insensitive view of request headers, so adapters do not
/// depend on any HTTP library. The gateway implements it for its framework's
/// header map; tests use a slice of pairs.
pub trait Headers {
    /// The first value of `name` (compared ASCII case-insensitively) that is
    /// valid visible ASCII.
    fn get(&self, name: &str) -> Option<&str>;
}

impl Headers for [(&str, &str)] {
    fn get(&self, name: &str) -> Option<&str> {
        self.iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| *value)
    }
}

impl<const N: usize> Headers for [(&str, &str); N] {
    fn get(&self, name: &str) -> Option<&str> {
        Headers::get(self.as_slice(), name)
    }
}

impl Headers for Vec<(String, String)> {
    fn get(&self, name: &str) -> Option<&str> {
        self.iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// A webhook exactly as it arrived: headers and the raw body bytes. Nothing
/// may parse or re-serialise the body before it is verified, because Meta
/// signs the exact bytes it sent.
#[derive(Clone, Copy)]
pub struct RawWebhook<'a> {
    pub headers: &'a dyn Headers,
    pub body: &'a [u8],
}

impl<'a> RawWebhook<'a> {
    pub fn new(headers: &'a dyn Headers, body: &'a [u8]) -> Self {
        Self { headers, body }
    }
}

impl fmt::Debug for RawWebhook<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawWebhook")
            .field("body_len", &self.body.len())
            .finish_non_exhaustive()
    }
}

/// A webhook body whose authenticity was proven by its channel's adapter.
///
/// Architecture Invariant: the only way to obtain one is [`verify`] (or the
/// trait's `verify` method), which runs the adapter's `authenticate` first;
/// its fields are private and it has no public constructor. `parse` accepts
/// nothing else, so a forged body cannot reach the bot by construction.
pub struct VerifiedWebhook<'a> {
    body: &'a [u8],
    platform: Platform,
    channel: ChannelId,
}

impl<'a> VerifiedWebhook<'a> {
    pub fn body(&self) -> &'a [u8] {
        self.body
    }

    pub fn platform(&self) -> Platform {
        self.platform
    }

    /// The channel whose secret proved the body.
    pub fn channel(&self) -> &ChannelId {
        &self.channel
    }
}

impl fmt::Debug for VerifiedWebhook<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifiedWebhook")
            .field("platform", &self.platform)
            .field("channel", &self.channel)
            .field("body_len", &self.body.len())
            .finish()
    }
}

/// Proves a raw webhook authentic with `adapter` and hands back the verified
/// form. The single place a [`VerifiedWebhook`] is made.
pub fn verify<'a, A: PlatformAdapter + ?Sized>(
    adapter: &A,
    raw: RawWebhook<'a>,
) -> Result<VerifiedWebhook<'a>, VerifyError> {
    adapter.authenticate(&raw)?;
    Ok(VerifiedWebhook {
        body: raw.body,
        platform: adapter.platform(),
        channel: adapter.channel().clone(),
    })
}

/// Meta's subscription handshake query (`hub.mode`, `hub.verify_token`,
/// `hub.challenge`), already URL-decoded by the gateway.
#[derive(Clone, Default)]
pub struct HandshakeQuery {
    pub mode: Option<String>,
    pub verify_token: Option<String>,
    pub challenge: Option<String>,
}

impl fmt::Debug for HandshakeQuery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HandshakeQuery")
            .field("mode", &self.mode)
            .field(
                "verify_token",
                &self.verify_token.as_ref().map(|_| "[REDACTED]"),
            )
            .field("challenge", &self.challenge)
            .finish()
    }
}

/// One channel's adapter: a value built from the channel's configuration
/// (secrets included) that turns bytes into events and messages into
/// requests. Implementations are sans-IO: no sockets, no clocks, no
/// environment; every input is an argument.
pub trait PlatformAdapter: Send + Sync {
    fn platform(&self) -> Platform;

    fn channel(&self) -> &ChannelId;

    fn capabilities(&self) -> &Capabilities;

    /// Checks the request's signature or secret token against the raw bytes,
    /// in constant time. Called only through [`verify`].
    fn authenticate(&self, raw: &RawWebhook<'_>) -> Result<(), VerifyError>;

    /// Proves the webhook authentic; see [`verify`].
    fn verify<'a>(&self, raw: RawWebhook<'a>) -> Result<VerifiedWebhook<'a>, VerifyError> {
        verify(self, raw)
    }

    /// Answers Meta's GET subscription handshake with the challenge to echo.
    /// Platforms without one return [`HandshakeError::NotSupported`].
    fn handshake(&self, query: &HandshakeQuery) -> Result<String, HandshakeError>;

    /// Every event in the body. Unknown shapes become
    /// `EventKind::Unsupported`; only a body that is not the platform's JSON
    /// at all is an error.
    fn parse(&self, webhook: &VerifiedWebhook<'_>) -> Result<Vec<InboundEvent>, ParseError>;

    /// The platform API request(s) that deliver `message`, in order.
    fn render(&self, message: &OutboundMessage) -> Result<Vec<PlatformRequest>, RenderError>;

    /// What the platform's answer to a rendered request means. `retry_after`
    /// is the HTTP `Retry-After` header, if any.
    fn classify(&self, status: u16, retry_after: Option<&str>, body: &[u8]) -> SendOutcome;
}
