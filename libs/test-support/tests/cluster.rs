//! The cluster fixture itself: three nodes form a JetStream cluster, a stream of three replicas
//! has a leader the fixture can name, and losing that leader elects another one without losing
//! an acknowledged message.

use std::time::{Duration, Instant};

use async_nats::jetstream::{self, stream};
use test_support::NatsCluster;

#[tokio::test]
async fn a_three_node_cluster_elects_a_new_stream_leader_and_keeps_every_acknowledged_message() {
    let mut cluster = NatsCluster::start().await.expect("cluster");
    assert_eq!(cluster.len(), 3);
    assert_eq!(cluster.urls().split(',').count(), 3);
    cluster.meta_leader().await.expect("a meta leader");

    let client = async_nats::connect(cluster.urls().split(',').collect::<Vec<_>>())
        .await
        .expect("connect");
    let js = jetstream::new(client);
    let config = stream::Config {
        name: "FIXTURE".into(),
        subjects: vec!["fixture.>".into()],
        storage: stream::StorageType::File,
        num_replicas: 3,
        ..Default::default()
    };
    let mut created = false;
    for _ in 0..10 {
        // Right after the cluster forms, the first API call can time out although it succeeded.
        if js.get_or_create_stream(config.clone()).await.is_ok() {
            created = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(created, "the stream was never created");
    let placement = cluster
        .stream_placement("FIXTURE")
        .await
        .expect("placement");
    assert_eq!(placement.configured_replicas, 3);
    let mut nodes = placement.nodes();
    nodes.sort_unstable();
    assert_eq!(nodes, vec![0, 1, 2], "{placement:?}");

    let publish = |n: usize| {
        let js = js.clone();
        async move {
            let ack = js
                .publish(format!("fixture.{n}"), n.to_string().into())
                .await
                .map_err(|e| e.to_string())?;
            ack.await.map(|_| ()).map_err(|e| e.to_string())
        }
    };
    let mut acknowledged = 0usize;
    for n in 0..100 {
        publish(n).await.expect("publish before the kill");
        acknowledged += 1;
    }

    let leader = placement.leader;
    cluster.kill(leader).await;
    let killed_at = Instant::now();
    let next = cluster
        .wait_stream_leader("FIXTURE", Some(leader), Duration::from_secs(30))
        .await
        .expect("a new leader");
    assert_ne!(next, leader);
    // Publishing works again once the new leader is in place.
    loop {
        if publish(acknowledged).await.is_ok() {
            acknowledged += 1;
            break;
        }
        assert!(
            killed_at.elapsed() < Duration::from_secs(30),
            "publishing did not resume"
        );
    }
    eprintln!(
        "stream leader {} killed; {} leads after {:.1}s",
        cluster.name(leader),
        cluster.name(next),
        killed_at.elapsed().as_secs_f64()
    );

    cluster.start_again(leader).await.expect("restart");
    cluster
        .wait_stream_current("FIXTURE", Duration::from_secs(30))
        .await
        .expect("the restarted replica catches up");
    let info = cluster.stream_info("FIXTURE").await.expect("info");
    assert_eq!(
        info["state"]["messages"].as_u64(),
        Some(acknowledged as u64),
        "{info}"
    );

    // The meta leader can be found and lost too.
    let meta = cluster.meta_leader().await.expect("meta leader");
    cluster.stop(meta).await.expect("stop");
    let other = cluster
        .wait_meta_leader(Duration::from_secs(30))
        .await
        .expect("another meta leader");
    assert_ne!(other, meta);
    cluster.start_again(meta).await.expect("restart");
    cluster
        .wait_ready(Duration::from_secs(30))
        .await
        .expect("ready");
}
