//! Logging set-up in one place: pretty or JSON lines on stderr, level from
//! `RUST_LOG` or `server.log_level`, and personal data redacted from every
//! line before it is written (defence in depth: the code already avoids
//! logging message text, names and numbers).

use std::io::{self, Write};

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::LogFormat;

/// Wraps stderr; each formatted event is redacted before it is written.
#[derive(Debug, Clone, Copy, Default)]
pub struct RedactingStderr;

pub struct RedactingWriter {
    buffer: Vec<u8>,
}

impl Write for RedactingWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.buffer.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for RedactingWriter {
    fn drop(&mut self) {
        let text = String::from_utf8_lossy(&self.buffer);
        let redacted = switchboard_core::guards::redact_pii(&text);
        let _ = io::stderr().lock().write_all(redacted.as_bytes());
    }
}

impl<'a> MakeWriter<'a> for RedactingStderr {
    type Writer = RedactingWriter;

    fn make_writer(&'a self) -> Self::Writer {
        RedactingWriter {
            buffer: Vec::with_capacity(256),
        }
    }
}

/// Installs the global subscriber. Safe to call twice (the second is a no-op).
pub fn init(format: LogFormat, level: &str) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(RedactingStderr);
    let _ = match format {
        LogFormat::Json => with_traces(
            builder
                .json()
                .flatten_event(true)
                .with_current_span(true)
                .finish(),
        )
        .try_init(),
        LogFormat::Pretty => with_traces(builder.with_ansi(false).finish()).try_init(),
    };
}

/// Adds the OpenTelemetry exporter (feature `otel`, see otel.rs) when an
/// OTLP endpoint is configured.
#[cfg(feature = "otel")]
fn with_traces<S>(subscriber: S) -> impl tracing::Subscriber + Send + Sync
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a> + Send + Sync,
{
    use tracing_subscriber::layer::SubscriberExt;
    subscriber.with(crate::otel::layer())
}

#[cfg(not(feature = "otel"))]
fn with_traces<S: tracing::Subscriber + Send + Sync>(subscriber: S) -> S {
    subscriber
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn personal_data_is_redacted_before_a_line_is_written() {
        let line = "customer jane.doe@example.com called from +49 170 1234567 paying with 4111 1111 1111 1111";
        let redacted = switchboard_core::guards::redact_pii(line);
        for secret in ["jane.doe@example.com", "170 1234567", "4111 1111 1111 1111"] {
            assert!(!redacted.contains(secret), "{secret} survived: {redacted}");
        }
        // The writer buffers a whole event and writes it once, redacted.
        let mut writer = RedactingStderr.make_writer();
        writer.write_all(line.as_bytes()).unwrap();
        assert_eq!(writer.buffer, line.as_bytes());
    }
}
