fn main() -> std::process::ExitCode {
    provenant_engine::cli::run()
}
