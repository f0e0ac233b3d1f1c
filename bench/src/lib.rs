//! What the benchmark programs share: a handshake that offers permessage-deflate, which
//! tokio-tungstenite does not speak, and a message body compressed as RFC 7692 sends one.

use std::io::Write;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The end of a sync flush, which a permessage-deflate sender removes (RFC 7692 §7.2.1).
const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// Opens `url` (`ws://HOST:PORT/PATH`) with `Sec-WebSocket-Extensions: {offer}`, and answers the
/// socket once the server has agreed to permessage-deflate. The response is read a byte at a
/// time, so nothing the server sends after it is taken from the socket.
///
/// # Errors
///
/// A bad URL, a failed connection, or a response that is not a 101 agreeing to the extension.
pub async fn connect_offering_deflate(url: &str, offer: &str) -> Result<TcpStream, String> {
    let (addr, path) = url
        .strip_prefix("ws://")
        .and_then(|rest| rest.split_once('/'))
        .ok_or("a ws://HOST:PORT/PATH URL")?;
    let mut stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let head = format!(
        "GET /{path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Extensions: {offer}\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.map_err(|e| e.to_string())?;
    let mut response = Vec::new();
    let mut byte = [0u8; 1];
    while !response.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).await.map_err(|e| e.to_string())? == 0 {
            return Err("closed during the handshake".to_string());
        }
        response.extend_from_slice(&byte);
    }
    let head = String::from_utf8_lossy(&response).to_ascii_lowercase();
    if !head.starts_with("http/1.1 101") || !head.contains("permessage-deflate") {
        return Err(format!("permessage-deflate was not agreed: {head}"));
    }
    Ok(stream)
}

/// `payload` as one permessage-deflate message body: raw deflate at `level`, a sync flush, and
/// the flush's `00 00 ff ff` removed.
///
/// # Errors
///
/// None in practice (the compressor writes to memory); flate2's writer answers `io::Result`.
pub fn deflate_message(payload: &[u8], level: flate2::Compression) -> std::io::Result<Vec<u8>> {
    let mut encoder = flate2::write::DeflateEncoder::new(Vec::new(), level);
    encoder.write_all(payload)?;
    encoder.flush()?;
    let mut body = encoder.get_ref().clone();
    if body.ends_with(&TAIL) {
        body.truncate(body.len() - TAIL.len());
    }
    Ok(body)
}
