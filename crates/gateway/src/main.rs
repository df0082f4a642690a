//! The `gateway` binary. Until the gateway issue lands it only states that it is not ready.

use std::process::ExitCode;

fn main() -> ExitCode {
    #[expect(
        clippy::print_stderr,
        reason = "the binary's only output until the server lands"
    )]
    {
        eprintln!("gateway: the server is not built yet; see README.md");
    }
    ExitCode::FAILURE
}
