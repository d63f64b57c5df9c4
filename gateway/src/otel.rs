//! Optional OpenTelemetry traces: with the cargo feature `otel` (off by
//! default, so the usual build carries no exporter) and
//! `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`)
//! set, the tracing spans are exported over OTLP/HTTP (protobuf): one span
//! per request (`request_id.rs`; a webhook is `POST /webhooks/{platform}/{channel}`)
//! and one per send API call (`send`, in the sender). The standard `OTEL_*`
//! variables (service name, headers, sampler, timeouts) apply.
//!
//! Spans carry only closed-set fields (route patterns, platform, status):
//! never message text, user ids or secrets.

#[cfg(feature = "otel")]
mod enabled {
    use std::sync::OnceLock;

    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_sdk::trace::SdkTracerProvider;
    use tracing::Subscriber;
    use tracing_subscriber::Layer;
    use tracing_subscriber::registry::LookupSpan;

    static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();

    fn configured() -> bool {
        [
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        ]
        .iter()
        .any(|name| std::env::var(name).is_ok_and(|v| !v.trim().is_empty()))
    }

    /// The tracing layer that exports spans, when an endpoint is configured.
    pub fn layer<S>() -> Option<Box<dyn Layer<S> + Send + Sync>>
    where
        S: Subscriber + for<'a> LookupSpan<'a> + Send + Sync,
    {
        if !configured() {
            return None;
        }
        let exporter = match opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .build()
        {
            Ok(exporter) => exporter,
            Err(error) => {
                #[allow(clippy::print_stderr)] // Logging is not set up yet.
                {
                    eprintln!("OpenTelemetry export disabled: {error}");
                }
                return None;
            }
        };
        let mut resource = opentelemetry_sdk::Resource::builder();
        if std::env::var("OTEL_SERVICE_NAME").is_err() {
            resource = resource.with_service_name("switchboard");
        }
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource.build())
            .build();
        let tracer = provider.tracer("switchboard");
        let _ = PROVIDER.set(provider);
        Some(Box::new(tracing_opentelemetry::layer().with_tracer(tracer)))
    }

    /// Flushes spans still buffered (at exit).
    pub fn shutdown() {
        if let Some(provider) = PROVIDER.get() {
            let _ = provider.shutdown();
        }
    }
}

#[cfg(feature = "otel")]
pub use enabled::{layer, shutdown};

/// Without the `otel` feature there is nothing to flush.
#[cfg(not(feature = "otel"))]
pub fn shutdown() {}
