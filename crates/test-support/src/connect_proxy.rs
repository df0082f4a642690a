//! Minimal HTTP CONNECT and SOCKS5 proxies on 127.0.0.1, for testing outbound proxy support.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    task::JoinHandle,
};

/// Which protocol the proxy speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    Connect,
    Socks5,
}

/// A running CONNECT or SOCKS5 proxy; stops when dropped.
#[derive(Debug)]
pub struct ConnectProxy {
    protocol: Protocol,
    addr: SocketAddr,
    tunnels: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Drop for ConnectProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ConnectProxy {
    /// Start an HTTP CONNECT proxy on 127.0.0.1. Only tunnels to 127.0.0.1 are allowed.
    pub async fn start() -> std::io::Result<Self> {
        Self::spawn(Protocol::Connect).await
    }

    /// Start a SOCKS5 proxy (no authentication) on 127.0.0.1. Only 127.0.0.1 targets are allowed.
    pub async fn start_socks5() -> std::io::Result<Self> {
        Self::spawn(Protocol::Socks5).await
    }

    async fn spawn(protocol: Protocol) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let tunnels = Arc::new(AtomicUsize::new(0));
        let counter = tunnels.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                match protocol {
                    Protocol::Connect => tokio::spawn(tunnel(stream, counter.clone())),
                    Protocol::Socks5 => tokio::spawn(socks5(stream, counter.clone())),
                };
            }
        });
        Ok(Self {
            protocol,
            addr,
            tunnels,
            task,
        })
    }

    /// `http://127.0.0.1:<port>` or `socks5://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        match self.protocol {
            Protocol::Connect => format!("http://{}", self.addr),
            Protocol::Socks5 => format!("socks5://{}", self.addr),
        }
    }

    /// Tunnels established so far.
    pub fn tunnels(&self) -> usize {
        self.tunnels.load(Ordering::SeqCst)
    }
}

async fn tunnel(mut client: TcpStream, tunnels: Arc<AtomicUsize>) -> std::io::Result<()> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    // The request head is small; read it byte by byte so no tunnel bytes are consumed.
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > 8192 || client.read(&mut byte).await? == 0 {
            return Ok(());
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    let target = head
        .strip_prefix("CONNECT ")
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or("");
    if !target.starts_with("127.0.0.1:") {
        client
            .write_all(b"HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n")
            .await?;
        return Ok(());
    }
    let mut upstream = TcpStream::connect(target).await?;
    client
        .write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")
        .await?;
    tunnels.fetch_add(1, Ordering::SeqCst);
    tokio::io::copy_bidirectional(&mut client, &mut upstream).await?;
    Ok(())
}

async fn socks5(mut client: TcpStream, tunnels: Arc<AtomicUsize>) -> std::io::Result<()> {
    // Greeting: version, number of methods, methods. Answer "no authentication".
    let mut head = [0u8; 2];
    client.read_exact(&mut head).await?;
    let mut methods = vec![0u8; usize::from(head[1])];
    client.read_exact(&mut methods).await?;
    client.write_all(&[5, 0]).await?;
    // Request: version, CONNECT, reserved, address type, address, port.
    let mut request = [0u8; 4];
    client.read_exact(&mut request).await?;
    let host = match request[3] {
        1 => {
            let mut ip = [0u8; 4];
            client.read_exact(&mut ip).await?;
            std::net::Ipv4Addr::from(ip).to_string()
        }
        3 => {
            let mut len = [0u8; 1];
            client.read_exact(&mut len).await?;
            let mut name = vec![0u8; usize::from(len[0])];
            client.read_exact(&mut name).await?;
            String::from_utf8_lossy(&name).into_owned()
        }
        _ => return Ok(()),
    };
    let mut port = [0u8; 2];
    client.read_exact(&mut port).await?;
    let port = u16::from_be_bytes(port);
    if host != "127.0.0.1" && host != "localhost" {
        client.write_all(&[5, 2, 0, 1, 0, 0, 0, 0, 0, 0]).await?;
        return Ok(());
    }
    let mut upstream = TcpStream::connect(("127.0.0.1", port)).await?;
    client.write_all(&[5, 0, 0, 1, 127, 0, 0, 1, 0, 0]).await?;
    tunnels.fetch_add(1, Ordering::SeqCst);
    tokio::io::copy_bidirectional(&mut client, &mut upstream).await?;
    Ok(())
}
