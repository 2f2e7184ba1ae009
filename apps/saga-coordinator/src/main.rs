#[tokio::main]
async fn main() -> anyhow::Result<()> {
    service_kit::startup::init_tracing();
    let settings = saga_coordinator::Settings::from_env()?;
    let shutdown = messaging::shutdown::on_signal();
    saga_coordinator::build(settings, shutdown)
        .await?
        .run_until_stopped()
        .await
}
