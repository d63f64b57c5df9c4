//! Adapter errors. Messages never include secrets, signatures or body text:
//! they end up in logs and metrics.

/// Why a webhook was refused as not coming from the platform (HTTP 401).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("missing {0} header")]
    MissingHeader(&'static str),
    #[error("malformed {0} header")]
    MalformedHeader(&'static str),
    #[error(
        "only the legacy X-Hub-Signature (sha1) header was sent; X-Hub-Signature-256 is required"
    )]
    LegacySignatureOnly,
    #[error("signature does not match the body")]
    SignatureMismatch,
    #[error("secret token does not match")]
    SecretTokenMismatch,
    #[error("the channel has no secret configured to verify with")]
    NoSecretConfigured,
}

impl VerifyError {
    /// A stable label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            VerifyError::MissingHeader(_) => "missing_header",
            VerifyError::MalformedHeader(_) => "malformed_header",
            VerifyError::LegacySignatureOnly => "legacy_signature_only",
            VerifyError::SignatureMismatch => "signature_mismatch",
            VerifyError::SecretTokenMismatch => "secret_token_mismatch",
            VerifyError::NoSecretConfigured => "no_secret_configured",
        }
    }
}

/// Why Meta's subscription handshake was refused (HTTP 403, or 404 for
/// platforms without one).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    #[error("this platform has no webhook handshake")]
    NotSupported,
    #[error("hub.mode must be 'subscribe'")]
    WrongMode,
    #[error("missing {0}")]
    MissingParameter(&'static str),
    #[error("hub.verify_token does not match")]
    TokenMismatch,
}

/// A verified body that is not the platform's JSON at all. The gateway still
/// answers 200 (the platform would only retry) and keeps it as a dead letter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("body is not valid JSON: {0}")]
    NotJson(String),
    #[error("body is not a {platform} webhook: {detail}")]
    WrongShape {
        platform: &'static str,
        detail: String,
    },
}

/// An outbound message that cannot be rendered for this platform.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    #[error("conversation belongs to {found}, not to this {expected} adapter")]
    WrongPlatform {
        expected: &'static str,
        found: &'static str,
    },
    #[error("chat id {0} is not valid on this platform")]
    InvalidChat(String),
    #[error("message is empty")]
    Empty,
    #[error("{0}")]
    Unsupported(&'static str),
}
