#[tokio::main]
async fn main() -> anyhow::Result<()> {
    service_kit::startup::init_tracing();
    let settings = order_service::Settings::from_env()?;
    let shutdown = messaging::shutdown::on_signal();
    order_service::build(settings, shutdown)
        .await?
        .run_until_stopped()
        .await
}
