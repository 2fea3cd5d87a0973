//! `ccs-worker`: the worker role as a binary of its own, for images and
//! process managers that run workers apart from the API. It is exactly
//! `ccs worker …`: same flags, same environment variables.

fn main() -> std::process::ExitCode {
    ccs::cli::run_worker_binary()
}
