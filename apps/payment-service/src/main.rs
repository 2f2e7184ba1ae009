fn main() -> std::process::ExitCode {
    service_kit::startup::main(
        &payment_service::DEFAULTS,
        |args: payment_service::Args, stop| payment_service::build(args.settings(), stop),
    )
}
