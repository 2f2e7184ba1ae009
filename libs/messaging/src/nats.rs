//! Connecting to NATS, and provisioning streams and durable consumers.
//!
//! The server may be older than this client (a server the user already runs is used as it is;
//! Debian 12 ships nats-server 2.9.10), and an old server silently drops settings it does not know. So every stream and consumer is read back after it is
//! created, and provisioning fails loudly when what the server stored differs from what was asked.

use std::path::PathBuf;
use std::time::Duration;

use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, ReplayPolicy, pull};
use async_nats::jetstream::stream::{self, DiscardPolicy, RetentionPolicy, StorageType};
use async_nats::jetstream::{self, consumer::PullConsumer};
use shared_events::Stream;

/// How to reach NATS. Credentials come from the URL (`nats://user:pass@host:4222`) or a creds file;
/// none of them is ever logged.
#[derive(Clone, Debug)]
pub struct NatsSettings {
    /// One server, or several comma-separated (the nodes of a cluster: the client connects to
    /// one and fails over to the others).
    pub url: String,
    pub creds_file: Option<PathBuf>,
    /// A CA certificate to trust for TLS; setting it also requires TLS.
    pub tls_ca_file: Option<PathBuf>,
    pub require_tls: bool,
    /// The client name the server shows for this connection.
    pub client_name: String,
    /// Replicas of every stream provisioned (1 on a single server, 3 on a three-node cluster).
    pub stream_replicas: usize,
}

impl NatsSettings {
    pub fn new(url: impl Into<String>, client_name: impl Into<String>) -> Self {
        NatsSettings {
            url: url.into(),
            creds_file: None,
            tls_ca_file: None,
            require_tls: false,
            client_name: client_name.into(),
            stream_replicas: 1,
        }
    }

    /// Each server of [`NatsSettings::url`].
    pub fn servers(&self) -> Vec<&str> {
        self.url.split(',').map(str::trim).collect()
    }

    /// The servers with any password replaced, for logs.
    pub fn redacted_url(&self) -> String {
        let redact = |url: &str| match (url.find("://"), url.rfind('@')) {
            (Some(scheme), Some(at)) if at > scheme => {
                format!("{}://***@{}", &url[..scheme], &url[at + 1..])
            }
            _ => url.to_owned(),
        };
        self.servers()
            .into_iter()
            .map(redact)
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// How long the client waits before its `attempts`-th reconnection: at once, then doubling from
/// 2 ms up to half a second (async-nats' own default goes up to 4 s, which a server back after a
/// long outage would add to the recovery).
pub fn reconnect_delay(attempts: usize) -> Duration {
    const MAX: Duration = Duration::from_millis(500);
    match attempts {
        0 | 1 => Duration::ZERO,
        n => Duration::from_millis(2u64.saturating_pow((n - 1).min(63) as u32)).min(MAX),
    }
}

/// Connects, reconnecting forever afterwards; the first connection must succeed.
pub async fn connect(settings: &NatsSettings) -> anyhow::Result<async_nats::Client> {
    use anyhow::Context as _;
    let mut options = async_nats::ConnectOptions::new()
        .name(&settings.client_name)
        .max_reconnects(None)
        .reconnect_delay_callback(reconnect_delay)
        .connection_timeout(Duration::from_secs(5));
    if let Some(path) = &settings.creds_file {
        options = options
            .credentials_file(path)
            .await
            .with_context(|| format!("reading NATS creds file {}", path.display()))?;
    }
    if let Some(ca) = &settings.tls_ca_file {
        options = options.add_root_certificates(ca.clone()).require_tls(true);
    }
    if settings.require_tls {
        options = options.require_tls(true);
    }
    options
        .connect(settings.servers())
        .await
        .with_context(|| format!("connecting to NATS at {}", settings.redacted_url()))
}

/// A JetStream context whose requests and publish acks give up after a few seconds.
pub fn jetstream(client: async_nats::Client) -> jetstream::Context {
    jetstream::ContextBuilder::new()
        .timeout(Duration::from_secs(5))
        .build(client)
}

#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    #[error("{what}: {source}")]
    Server {
        what: String,
        #[source]
        source: async_nats::Error,
    },
    #[error("{what}: the server stored a different configuration than asked ({})", .differences.join("; "))]
    Mismatch {
        what: String,
        differences: Vec<String>,
    },
}

fn server_error(what: impl Into<String>) -> impl FnOnce(async_nats::Error) -> ProvisionError {
    let what = what.into();
    move |source| ProvisionError::Server { what, source }
}

/// How long the event streams keep an event (and so how long it may be redelivered).
pub const MAX_EVENT_AGE: Duration = Duration::from_secs(7 * 24 * 3600);

/// How long the `DLQ` stream keeps a dead letter: four times an event's age, so that an operator
/// back from a long absence still finds them.
pub const DLQ_MAX_AGE: Duration = Duration::from_secs(4 * 7 * 24 * 3600);

/// The configuration of each stream: file storage, kept by age so that consumers can be added
/// later and events replayed, with a two-minute window in which a repeated `Nats-Msg-Id` is
/// stored once.
pub fn stream_config(stream: Stream, replicas: usize) -> stream::Config {
    stream::Config {
        name: stream.name().into(),
        subjects: vec![stream.subjects().into()],
        storage: StorageType::File,
        retention: RetentionPolicy::Limits,
        discard: DiscardPolicy::Old,
        max_age: if stream == Stream::Dlq {
            DLQ_MAX_AGE
        } else {
            MAX_EVENT_AGE
        },
        duplicate_window: Duration::from_secs(120),
        num_replicas: replicas.max(1),
        ..Default::default()
    }
}

/// What differs between the stream configuration asked for and the one stored.
pub fn stream_differences(asked: &stream::Config, stored: &stream::Config) -> Vec<String> {
    let mut out = Vec::new();
    let mut cmp = |field: &str, a: String, s: String| {
        if a != s {
            out.push(format!("{field}: asked {a}, stored {s}"));
        }
    };
    cmp(
        "subjects",
        format!("{:?}", asked.subjects),
        format!("{:?}", stored.subjects),
    );
    cmp(
        "storage",
        format!("{:?}", asked.storage),
        format!("{:?}", stored.storage),
    );
    cmp(
        "retention",
        format!("{:?}", asked.retention),
        format!("{:?}", stored.retention),
    );
    cmp(
        "discard",
        format!("{:?}", asked.discard),
        format!("{:?}", stored.discard),
    );
    cmp(
        "max_age",
        format!("{:?}", asked.max_age),
        format!("{:?}", stored.max_age),
    );
    cmp(
        "duplicate_window",
        format!("{:?}", asked.duplicate_window),
        format!("{:?}", stored.duplicate_window),
    );
    cmp(
        "num_replicas",
        asked.num_replicas.to_string(),
        stored.num_replicas.to_string(),
    );
    out
}

/// Creates the stream, or brings an existing one to the asked configuration (its replicas
/// included: a stream of one replica grows to three), and checks what the server stored.
pub async fn ensure_stream(
    js: &jetstream::Context,
    stream: Stream,
    replicas: usize,
) -> Result<(), ProvisionError> {
    let asked = stream_config(stream, replicas);
    let what = format!("stream {}", stream.name());
    let mut handle = js
        .get_or_create_stream(asked.clone())
        .await
        .map_err(|e| server_error(what.clone())(e.into()))?;
    let mut stored = handle
        .info()
        .await
        .map_err(|e| server_error(what.clone())(e.into()))?
        .config
        .clone();
    if !stream_differences(&asked, &stored).is_empty() {
        // An existing stream from an older configuration: update what may be updated.
        if let Ok(info) = js.update_stream(asked.clone()).await {
            stored = info.config;
        }
    }
    let differences = stream_differences(&asked, &stored);
    if differences.is_empty() {
        Ok(())
    } else {
        Err(ProvisionError::Mismatch { what, differences })
    }
}

/// Provisions every stream of the system, each with `replicas` replicas.
pub async fn ensure_streams(
    js: &jetstream::Context,
    replicas: usize,
) -> Result<(), ProvisionError> {
    for stream in Stream::ALL {
        ensure_stream(js, stream, replicas).await?;
    }
    Ok(())
}

/// What a durable pull consumer is asked to be.
pub fn consumer_config(
    durable: &str,
    filter_subject: &str,
    ack_wait: Duration,
    max_ack_pending: i64,
) -> pull::Config {
    pull::Config {
        durable_name: Some(durable.into()),
        description: Some(format!("{durable}: {filter_subject}")),
        filter_subject: filter_subject.into(),
        deliver_policy: DeliverPolicy::All,
        ack_policy: AckPolicy::Explicit,
        ack_wait,
        // Redeliveries are unlimited on the server: the consumer counts attempts itself and
        // dead-letters, which the server would otherwise do silently.
        max_deliver: -1,
        max_ack_pending,
        replay_policy: ReplayPolicy::Instant,
        ..Default::default()
    }
}

/// What differs between the consumer configuration asked for and the one stored.
pub fn consumer_differences(asked: &pull::Config, stored: &pull::Config) -> Vec<String> {
    let mut out = Vec::new();
    let mut cmp = |field: &str, a: String, s: String| {
        if a != s {
            out.push(format!("{field}: asked {a}, stored {s}"));
        }
    };
    cmp(
        "durable_name",
        format!("{:?}", asked.durable_name),
        format!("{:?}", stored.durable_name),
    );
    cmp(
        "filter_subject",
        asked.filter_subject.clone(),
        stored.filter_subject.clone(),
    );
    cmp(
        "deliver_policy",
        format!("{:?}", asked.deliver_policy),
        format!("{:?}", stored.deliver_policy),
    );
    cmp(
        "ack_policy",
        format!("{:?}", asked.ack_policy),
        format!("{:?}", stored.ack_policy),
    );
    cmp(
        "ack_wait",
        format!("{:?}", asked.ack_wait),
        format!("{:?}", stored.ack_wait),
    );
    cmp(
        "max_deliver",
        asked.max_deliver.to_string(),
        stored.max_deliver.to_string(),
    );
    cmp(
        "max_ack_pending",
        asked.max_ack_pending.to_string(),
        stored.max_ack_pending.to_string(),
    );
    out
}

/// Creates (or updates) a durable pull consumer on `stream` and checks what the server stored.
pub async fn ensure_consumer(
    js: &jetstream::Context,
    stream: Stream,
    asked: pull::Config,
) -> Result<PullConsumer, ProvisionError> {
    let what = format!(
        "consumer {} on {}",
        asked.durable_name.as_deref().unwrap_or("?"),
        stream.name()
    );
    let handle = js
        .get_stream(stream.name())
        .await
        .map_err(|e| server_error(what.clone())(e.into()))?;
    let mut consumer: PullConsumer = handle
        .create_consumer(asked.clone())
        .await
        .map_err(|e| server_error(what.clone())(e.into()))?;
    let info = consumer
        .info()
        .await
        .map_err(|e| server_error(what.clone())(e.into()))?;
    let stored = pull::Config {
        durable_name: info.config.durable_name.clone(),
        filter_subject: info.config.filter_subject.clone(),
        deliver_policy: info.config.deliver_policy,
        ack_policy: info.config.ack_policy,
        ack_wait: info.config.ack_wait,
        max_deliver: info.config.max_deliver,
        max_ack_pending: info.config.max_ack_pending,
        ..Default::default()
    };
    let differences = consumer_differences(&asked, &stored);
    if differences.is_empty() {
        Ok(consumer)
    } else {
        Err(ProvisionError::Mismatch { what, differences })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dropped_filter_subject_is_a_difference() {
        let asked = consumer_config("svc-x", "order.created.v1", Duration::from_secs(30), 100);
        let mut stored = asked.clone();
        assert!(consumer_differences(&asked, &stored).is_empty());
        stored.filter_subject = String::new();
        stored.max_ack_pending = 1000;
        let diff = consumer_differences(&asked, &stored);
        assert_eq!(diff.len(), 2, "{diff:?}");
        assert!(diff[0].starts_with("filter_subject"));
    }

    #[test]
    fn reconnection_is_at_once_then_never_more_than_half_a_second_apart() {
        assert_eq!(reconnect_delay(0), Duration::ZERO);
        assert_eq!(reconnect_delay(1), Duration::ZERO);
        assert_eq!(reconnect_delay(2), Duration::from_millis(2));
        assert_eq!(reconnect_delay(5), Duration::from_millis(16));
        assert_eq!(reconnect_delay(10), Duration::from_millis(500));
        assert_eq!(reconnect_delay(usize::MAX), Duration::from_millis(500));
    }

    #[test]
    fn credentials_never_reach_the_logged_url() {
        let s = NatsSettings::new("nats://app:s3cret@nats.internal:4222", "t");
        assert_eq!(s.redacted_url(), "nats://***@nats.internal:4222");
        let cluster = NatsSettings::new("nats://a:s3cret@n1:4222, nats://a:s3cret@n2:4223", "t");
        assert_eq!(cluster.servers().len(), 2);
        assert_eq!(
            cluster.redacted_url(),
            "nats://***@n1:4222,nats://***@n2:4223"
        );
        assert!(!s.redacted_url().contains("s3cret"));
        let plain = NatsSettings::new("nats://127.0.0.1:4222", "t");
        assert_eq!(plain.redacted_url(), "nats://127.0.0.1:4222");
    }
}
