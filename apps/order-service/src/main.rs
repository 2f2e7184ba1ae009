fn main() -> std::process::ExitCode {
    service_kit::startup::main(
        &order_service::DEFAULTS,
        |args: order_service::Args, stop| order_service::build(args.settings(), stop),
    )
}
