fn main() -> std::process::ExitCode {
    service_kit::startup::main(
        &saga_coordinator::DEFAULTS,
        |args: saga_coordinator::Args, stop| saga_coordinator::build(args.settings(), stop),
    )
}
