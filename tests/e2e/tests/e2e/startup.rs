//! Start-up against a JetStream that does not answer yet: a consumer's provisioning is tried
//! again, like the connections and the streams, instead of ending the process (a starting
//! cluster has no meta leader for a few seconds).

use std::time::Duration;

use messaging::{Batch, Handler, HandlerError, Shutdown};
use service_kit::{CommonSettings, Infra, ServiceBuilder};
use shared_events::{Envelope, EventKind};
use test_support::{NatsServer, TestDb};

#[derive(Clone)]
struct Nothing;

impl Handler for Nothing {
    async fn handle(&self, _: &[Envelope], _: &mut Batch<'_>) -> Result<(), HandlerError> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_provisioned_while_jetstream_is_away_is_provisioned_once_it_is_back() {
    let db = TestDb::create().await.expect("database");
    let mut nats = NatsServer::start().await.expect("nats-server");
    let settings = CommonSettings::for_test("payment-service", &db.url, &nats.url());
    let infra = Infra::connect(&settings, &[]).await.expect("connected");
    let mut builder = ServiceBuilder::new(settings, infra, Shutdown::new());
    // Away longer than a JetStream request waits for its answer (5 s): a provisioning tried
    // once fails meanwhile.
    nats.kill().await;
    let provisioning = tokio::spawn(async move {
        builder
            .consume(EventKind::OrderCancelled, Nothing)
            .await
            .map(|()| builder)
    });
    tokio::time::sleep(Duration::from_secs(7)).await;
    assert!(
        !provisioning.is_finished(),
        "provisioning ended while nats-server was away: {:?}",
        provisioning.await.map(Result::err)
    );
    nats.start_again().await.expect("nats-server again");
    tokio::time::timeout(Duration::from_secs(60), provisioning)
        .await
        .expect("provisioned within a minute of nats-server's return")
        .expect("the provisioning task")
        .expect("the consumer provisioned");
}
