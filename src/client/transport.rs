//! Opening the byte stream under a client connection: DNS, TCP, TLS, and the upgrade exchange.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::rustls::{ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;

use super::error::ConnectError;
use super::handshake::{self, Agreed};
use super::url::WsUrl;
use crate::protocol::deflate::negotiate::ClientOffer;

/// A plain or TLS connection.
pub(crate) enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

/// The trust store for `wss://` when the builder was given no TLS configuration: the Mozilla roots
/// compiled in by `webpki-roots`.
pub(crate) fn default_tls() -> Arc<ClientConfig> {
    let roots = RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    Arc::new(
        ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

/// Resolves the host, connects over TCP and, for `wss`, completes TLS: all within `timeout`.
pub(crate) async fn open(
    url: &WsUrl,
    tls: Option<Arc<ClientConfig>>,
    timeout: Duration,
) -> Result<Stream, ConnectError> {
    let connect = async {
        let tcp = tcp(url).await?;
        if !url.secure {
            return Ok(Stream::Plain(tcp));
        }
        let name = ServerName::try_from(url.host.clone()).map_err(|e| ConnectError::InvalidUrl {
            url: url.host.clone(),
            why: e.to_string(),
        })?;
        let connector = TlsConnector::from(tls.unwrap_or_else(default_tls));
        let tls = connector.connect(name, tcp).await.map_err(ConnectError::Tls)?;
        Ok(Stream::Tls(Box::new(tls)))
    };
    tokio::time::timeout(timeout, connect)
        .await
        .map_err(|_| ConnectError::ConnectTimeout(timeout))?
}

async fn tcp(url: &WsUrl) -> Result<TcpStream, ConnectError> {
    let addrs = tokio::net::lookup_host((url.host.as_str(), url.port))
        .await
        .map_err(|source| ConnectError::Dns {
            host: url.host.clone(),
            source,
        })?;
    let mut last = None;
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(tcp) => {
                // Frames are already batched by the writer; waiting to coalesce adds only latency.
                let _ = tcp.set_nodelay(true);
                return Ok(tcp);
            }
            Err(source) => {
                last = Some(ConnectError::Connect {
                    addr: addr.to_string(),
                    source,
                })
            }
        }
    }
    let no_address = || ConnectError::Dns {
        host: url.host.clone(),
        source: io::ErrorKind::NotFound.into(),
    };
    Err(last.unwrap_or_else(no_address))
}

/// Sends the upgrade request and reads the answer. Answers what was agreed and the bytes that
/// came after the response head.
pub(crate) async fn upgrade(
    stream: &mut Stream,
    url: &WsUrl,
    protocols: &[String],
    headers: &[(String, String)],
    offer: Option<&ClientOffer>,
) -> Result<(Agreed, Bytes), ConnectError> {
    let key = handshake::new_key();
    stream
        .write_all(&handshake::request(url, &key, protocols, headers, offer))
        .await?;
    stream.flush().await?;
    let mut buf = BytesMut::with_capacity(1024);
    loop {
        if stream.read_buf(&mut buf).await? == 0 {
            return Err(ConnectError::ClosedDuringHandshake);
        }
        if let Some(agreed) = handshake::check_response(&buf, &key, protocols, offer)? {
            let rest = buf.split_off(agreed.head_len.min(buf.len())).freeze();
            return Ok((agreed, rest));
        }
    }
}

impl crate::connection::Transport for Stream {
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self {
            Stream::Plain(tcp) => tcp.poll_read_ready(cx),
            // rustls holds what it decrypted: a read may find bytes with the socket drained.
            Stream::Tls(_) => Poll::Ready(Ok(())),
        }
    }
}

impl AsyncRead for Stream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Tls(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Plain(s) => s.is_write_vectored(),
            Stream::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}
