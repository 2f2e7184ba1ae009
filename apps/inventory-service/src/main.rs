fn main() -> std::process::ExitCode {
    service_kit::startup::main(
        &inventory_service::DEFAULTS,
        |args: inventory_service::Args, stop| inventory_service::build(args.settings(), stop),
    )
}
