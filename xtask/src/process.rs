//! Child processes for the checks that drive binaries: stopped when dropped, and asked where
//! they listen.

use std::{
    io::{BufRead, BufReader, Read, Write},
    path::Path,
    process::Child,
    sync::mpsc,
    time::Duration,
};

use anyhow::{Context, Result};

/// A child process that is killed and reaped when dropped, whatever happens.
pub(crate) struct Running(pub(crate) Child);

impl Running {
    pub(crate) fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The first line a child prints on stdout (the mock and the bare proxy print their address).
pub(crate) fn first_line(child: &mut Child) -> Result<String> {
    let mut line = String::new();
    BufReader::new(
        child
            .stdout
            .take()
            .context("the child's stdout is not piped")?,
    )
    .read_line(&mut line)?;
    Ok(line.trim().to_owned())
}

/// Read a gateway's log until it says `listening on ADDR` (bounded), keep draining it so the
/// pipe never fills, and copy it to `log` when given.
pub(crate) fn listening_address(
    stderr: impl Read + Send + 'static,
    log: Option<&Path>,
) -> Result<String> {
    let (found, address) = mpsc::channel();
    let mut file = log.map(std::fs::File::create).transpose()?;
    std::thread::spawn(move || {
        let mut sent = false;
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(file) = file.as_mut() {
                let _ = writeln!(file, "{line}");
            }
            if !sent && let Some(rest) = line.split("listening on ").nth(1) {
                let _ = found.send(rest.split_whitespace().next().unwrap_or("").to_owned());
                sent = true;
            }
        }
    });
    address
        .recv_timeout(Duration::from_secs(30))
        .context("no `listening on` line within 30 s")
}
