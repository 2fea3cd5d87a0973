//! The `ccs` binary: a shim over [`ccs::cli`].

fn main() -> std::process::ExitCode {
    ccs::cli::run()
}
