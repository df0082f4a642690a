//! The mock upstream as a process, for checks that drive the gateway binary with real clients
//! (`cargo xtask test`, `cargo xtask clients`, `cargo xtask bench`). Prints its URL on the first
//! line of stdout, then serves until it is killed; `GET /_mock/requests` returns what it
//! received and `DELETE /_mock/requests` forgets it.

use std::io::Write;

use test_support::MockUpstream;

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let upstream = MockUpstream::start().await?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", upstream.url())?;
    out.flush()?;
    drop(out);
    std::future::pending::<()>().await;
    Ok(())
}
