//! A service whose background task dies stops, with an error, instead of serving on half-alive.

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_whose_relay_consumer_or_sweep_dies_stops_with_an_error() {
    let mut stack = Stack::start(Options::default()).await;
    for (svc, task) in [
        (Svc::Payment, "relay"),
        (
            Svc::Inventory,
            "consumer inventory-service-order-created-v1",
        ),
        (Svc::Saga, "sweep"),
    ] {
        let tasks = stack.tasks(svc);
        assert!(
            tasks.names().contains(&task),
            "{svc:?} runs no task {task:?}: {:?}",
            tasks.names()
        );
        let (status, _) = stack.get(svc, "/health/live").await;
        assert_eq!(status, 200);
        let url = stack.url(svc, "/health/live");
        assert!(tasks.kill(task));
        let error = stack
            .ended(svc)
            .await
            .expect_err("a service whose task died must end with an error");
        assert!(
            error.to_string().contains(task),
            "the error names the task: {error}"
        );
        assert!(
            stack.http.get(&url).send().await.is_err(),
            "{svc:?} still answers HTTP after its {task} died"
        );
    }
}
