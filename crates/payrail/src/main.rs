//! The `payrail` binary: the server and the operator CLI. See `payrail --help`.

/// mimalloc: status lookups allocate a few dozen small objects each, and
/// glibc's allocator was ~6% of server time in the bench (see README).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    payrail::cli::main()
}
