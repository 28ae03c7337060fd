/// mimalloc: plugin calls build many small, short-lived values (event
/// payloads, provenance); it halves their cost against the system allocator
/// (docs/performance.md). `--features system-alloc` builds without it.
#[cfg(not(feature = "system-alloc"))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    provenant_cli::run()
}
