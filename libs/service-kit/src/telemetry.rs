//! Logs and traces of a service process.
//!
//! - Logs go to stderr: readable text by default (colours only on a terminal), or with
//!   `LOG_FORMAT=json` one JSON object per line: `timestamp`, `level`, `target`, `message`, the
//!   event's fields and those of the spans in scope, in camelCase (`traceId`, `sagaId`,
//!   `orderId`, ...). `RUST_LOG` filters them.
//! - With `OTEL_EXPORTER_OTLP_ENDPOINT` set, spans are exported by OTLP over HTTP (protobuf) to
//!   `<endpoint>/v1/traces`, by a batch processor on a thread of its own, under
//!   `OTEL_SERVICE_NAME` (default: the service's name); see `messaging::trace` for which spans.
//!   Unset, no span of the traced paths is made and nothing is exported.

use std::fmt;
use std::io::IsTerminal as _;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::format::{JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt as _;

use crate::settings::{LogFormat, TelemetryArgs};

/// The installed exporter, if any: flush it with [`Telemetry::shutdown`] before the process
/// exits.
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Exports what spans are left and stops the exporter. Blocks: call it outside the runtime.
    pub fn shutdown(self) {
        if let Some(provider) = self.provider
            && let Err(e) = provider.shutdown()
        {
            eprintln!("exporting the last spans failed: {e}");
        }
    }
}

/// Installs the process's logging and, with an endpoint, span export. Only the first call of a
/// process installs anything.
pub fn init(service: &'static str, args: &TelemetryArgs) -> Telemetry {
    let format: Box<dyn Layer<_> + Send + Sync> = match args.log_format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::stderr().is_terminal())
            .with_filter(args.rust_log.clone())
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .fmt_fields(JsonFields::new())
            .event_format(JsonLines)
            .with_filter(args.rust_log.clone())
            .boxed(),
    };
    let (provider, spans) = match &args.otel_exporter_otlp_endpoint {
        Some(endpoint) => match exporter(service, args, endpoint) {
            Ok(provider) => {
                let tracer = provider.tracer(service);
                // Spans of this system only; the HTTP and database clients' own stay out.
                let filter = Targets::new()
                    .with_default(Level::INFO)
                    .with_target("opentelemetry", Level::WARN)
                    .with_target("opentelemetry_sdk", Level::WARN)
                    .with_target("opentelemetry_otlp", Level::WARN)
                    .with_target("reqwest", Level::WARN)
                    .with_target("hyper", Level::WARN)
                    .with_target("hyper_util", Level::WARN)
                    .with_target("h2", Level::WARN)
                    .with_target("sqlx", Level::WARN)
                    .with_target("async_nats", Level::WARN);
                let layer = tracing_opentelemetry::layer()
                    .with_tracer(tracer)
                    .with_filter(filter);
                messaging::trace::enable();
                (Some(provider), Some(layer))
            }
            Err(e) => {
                eprintln!("spans will not be exported: {e:#}");
                (None, None)
            }
        },
        None => (None, None),
    };
    let _ = tracing_subscriber::registry()
        .with(format)
        .with(spans)
        .try_init();
    Telemetry { provider }
}

fn exporter(
    service: &'static str,
    args: &TelemetryArgs,
    endpoint: &str,
) -> anyhow::Result<SdkTracerProvider> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(format!("{endpoint}/v1/traces"))
        .build()?;
    let name = args
        .otel_service_name
        .clone()
        .unwrap_or_else(|| service.to_owned());
    Ok(SdkTracerProvider::builder()
        .with_resource(Resource::builder().with_service_name(name).build())
        .with_batch_exporter(exporter)
        .build())
}

/// One JSON object per line: the event's fields and those of the spans it is in, at the top
/// level, in camelCase.
struct JsonLines;

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let mut line = Map::new();
        line.insert(
            "timestamp".into(),
            chrono::Utc::now()
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
                .into(),
        );
        line.insert("level".into(), meta.level().as_str().into());
        line.insert("target".into(), meta.target().into());
        // The spans' fields, outermost first, so that inner spans and the event win.
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                let extensions = span.extensions();
                let Some(fields) = extensions.get::<FormattedFields<N>>() else {
                    continue;
                };
                if let Ok(Value::Object(fields)) = serde_json::from_str::<Value>(fields) {
                    for (name, value) in fields {
                        line.insert(camel_case(&name), value);
                    }
                }
            }
        }
        event.record(&mut Fields(&mut line));
        let text = serde_json::to_string(&line).map_err(|_| fmt::Error)?;
        writeln!(writer, "{text}")
    }
}

/// `saga_id` → `sagaId`.
fn camel_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = false;
    for c in name.chars() {
        if c == '_' {
            upper = !out.is_empty();
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

struct Fields<'a>(&'a mut Map<String, Value>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .insert(camel_case(field.name()), format!("{value:?}").into());
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(camel_case(field.name()), value.into());
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(camel_case(field.name()), value.into());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(camel_case(field.name()), value.into());
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(camel_case(field.name()), value.into());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(camel_case(field.name()), value.into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_names_become_camel_case() {
        assert_eq!(camel_case("saga_id"), "sagaId");
        assert_eq!(camel_case("trace_id"), "traceId");
        assert_eq!(camel_case("message"), "message");
        assert_eq!(camel_case("_private"), "private");
    }

    #[test]
    fn a_json_line_holds_the_event_and_its_spans_fields_at_the_top() {
        use std::sync::{Arc, Mutex};
        #[derive(Clone, Default)]
        struct Sink(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Sink {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let sink = Sink::default();
        let writer = sink.clone();
        let subscriber = tracing_subscriber::registry().with(
            tracing_subscriber::fmt::layer()
                .with_writer(move || writer.clone())
                .fmt_fields(JsonFields::new())
                .event_format(JsonLines),
        );
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("decide", trace_id = "4bf92f35", saga_id = "s-1");
            let _in = span.enter();
            tracing::info!(order_id = "o-1", outcome = "completed", "saga decided");
        });
        let text = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        let line: Value = serde_json::from_str(text.trim()).expect(&text);
        assert_eq!(line["message"], "saga decided");
        assert_eq!(line["level"], "INFO");
        assert_eq!(line["traceId"], "4bf92f35");
        assert_eq!(line["sagaId"], "s-1");
        assert_eq!(line["orderId"], "o-1");
        assert!(line["timestamp"].as_str().unwrap().ends_with('Z'));
        assert!(line["target"].as_str().unwrap().starts_with("service_kit"));
    }
}
