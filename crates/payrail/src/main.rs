//! The `payrail` binary: the server and the operator CLI. See `payrail --help`.

fn main() -> std::process::ExitCode {
    payrail::cli::main()
}
