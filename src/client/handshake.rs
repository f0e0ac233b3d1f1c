//! The client side of the opening handshake (RFC 6455 §4.1): the request, and checking the answer.

use base64::Engine;

use super::error::ConnectError;
use super::url::WsUrl;
use crate::handshake::accept_key;
use crate::protocol::deflate::{self, negotiate::ClientOffer};
use crate::protocol::random_mask;

/// The most bytes a server's handshake response head may take: far above real ones, and a bound
/// on what a hostile server can make the client buffer.
pub(crate) const MAX_RESPONSE_HEAD: usize = 16 << 10;

/// The most headers parsed from a response head.
const MAX_HEADERS: usize = 64;

/// A fresh `Sec-WebSocket-Key`: 16 unpredictable bytes in base64.
pub(crate) fn new_key() -> String {
    let mut bytes = [0u8; 16];
    for chunk in bytes.chunks_mut(4) {
        chunk.copy_from_slice(&random_mask());
    }
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Checks a header given to the builder before anything is sent: a name that is an HTTP token
/// (RFC 9110 §5.6.2), and a value without CR, LF or NUL, so that no header can smuggle another.
///
/// # Errors
///
/// [`ConnectError::InvalidHeader`] saying which rule it breaks.
pub(crate) fn check_header(name: &str, value: &str) -> Result<(), ConnectError> {
    let token = |c: u8| c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c);
    let why = if name.is_empty() || !name.bytes().all(token) {
        "the name is not an HTTP token"
    } else if value.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0)) {
        "the value holds CR, LF or NUL"
    } else {
        return Ok(());
    };
    Err(ConnectError::InvalidHeader {
        name: name.to_owned(),
        why,
    })
}

/// The upgrade request's bytes.
pub(crate) fn request(
    url: &WsUrl,
    key: &str,
    protocols: &[String],
    headers: &[(String, String)],
    offer: Option<&ClientOffer>,
) -> Vec<u8> {
    let mut out = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n",
        url.resource,
        url.host_header()
    );
    if !protocols.is_empty() {
        out.push_str(&format!("Sec-WebSocket-Protocol: {}\r\n", protocols.join(", ")));
    }
    if let Some(offer) = offer {
        out.push_str(&format!("Sec-WebSocket-Extensions: {}\r\n", offer.header()));
    }
    for (name, value) in headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str("\r\n");
    out.into_bytes()
}

/// What the server agreed to.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Agreed {
    /// The selected subprotocol.
    pub(crate) protocol: Option<String>,
    /// The permessage-deflate parameters, when the server accepted our offer.
    pub(crate) deflate: Option<deflate::Agreed>,
    /// How many bytes of the buffer the response head took; the rest are WebSocket frames.
    pub(crate) head_len: usize,
}

/// Parses and checks the response head at the start of `buf`; `Ok(None)` when it has not all
/// arrived.
///
/// # Errors
///
/// [`ConnectError::Status`] for any status but 101, and one variant per broken RFC 6455 rule.
pub(crate) fn check_response(
    buf: &[u8],
    key: &str,
    protocols: &[String],
    offer: Option<&ClientOffer>,
) -> Result<Option<Agreed>, ConnectError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    let head_len = match response.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() >= MAX_RESPONSE_HEAD => {
            return Err(ConnectError::MalformedResponse("response head too large".into()))
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(error) => return Err(ConnectError::MalformedResponse(error.to_string())),
    };
    let all = &*response.headers;
    let header = |name: &'static str| header_values(all, name);
    let has_token = |name: &'static str, token: &str| {
        header(name)
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    };
    let status = response.code.unwrap_or_default();
    if status != 101 {
        let reason = response.reason.unwrap_or_default().to_owned();
        return Err(ConnectError::Status { status, reason });
    }
    if !has_token("upgrade", "websocket") || !has_token("connection", "upgrade") {
        return Err(ConnectError::NotUpgraded);
    }
    if header("sec-websocket-accept").next() != Some(accept_key(key.as_bytes()).as_str()) {
        return Err(ConnectError::BadAccept);
    }
    let protocol = header("sec-websocket-protocol").next().map(|p| p.trim().to_owned());
    if let Some(chosen) = &protocol {
        if !protocols.contains(chosen) {
            return Err(ConnectError::UnofferedProtocol(chosen.clone()));
        }
    }
    let extensions: Vec<&str> = header("sec-websocket-extensions").collect();
    let deflate = match offer {
        Some(offer) => offer
            .check(extensions.iter().copied())
            .map_err(|e| ConnectError::MalformedResponse(format!("Sec-WebSocket-Extensions: {e}")))?,
        None if extensions.is_empty() => None,
        None => {
            return Err(ConnectError::MalformedResponse(
                "the server chose an extension we did not offer".into(),
            ))
        }
    };
    Ok(Some(Agreed {
        protocol,
        deflate,
        head_len,
    }))
}

/// The values of every header called `name`, as text.
fn header_values<'a>(headers: &'a [httparse::Header<'a>], name: &'static str) -> impl Iterator<Item = &'a str> + 'a {
    headers
        .iter()
        .filter(move |h| h.name.eq_ignore_ascii_case(name))
        .filter_map(|h| std::str::from_utf8(h.value).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

    fn response(extra: &str) -> String {
        format!("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n{extra}\r\n")
    }

    #[test]
    fn accepts_the_rfc_example_and_finds_where_frames_start() {
        let mut buf = response("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n").into_bytes();
        let head = buf.len();
        buf.extend_from_slice(&[0x81, 0x00]);
        let agreed = check_response(&buf, KEY, &[], None).unwrap().unwrap();
        assert_eq!(
            agreed,
            Agreed {
                protocol: None,
                deflate: None,
                head_len: head
            }
        );
        assert_eq!(check_response(&buf[..head - 2], KEY, &[], None).unwrap(), None);
    }

    #[test]
    fn each_broken_rule_has_its_error() {
        let wrong = response("Sec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n");
        assert!(matches!(
            check_response(wrong.as_bytes(), KEY, &[], None),
            Err(ConnectError::BadAccept)
        ));
        let not_found = "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n";
        assert!(matches!(
            check_response(not_found.as_bytes(), KEY, &[], None),
            Err(ConnectError::Status { status: 404, .. })
        ));
        let unoffered = response("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nSec-WebSocket-Protocol: x\r\n");
        assert!(matches!(
            check_response(unoffered.as_bytes(), KEY, &[], None),
            Err(ConnectError::UnofferedProtocol(_))
        ));
        let no_upgrade =
            "HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
        assert!(matches!(
            check_response(no_upgrade.as_bytes(), KEY, &[], None),
            Err(ConnectError::NotUpgraded)
        ));
        assert!(matches!(
            check_response(b"garbage\r\n\r\n", KEY, &[], None),
            Err(ConnectError::MalformedResponse(_))
        ));
        let huge = vec![b'a'; MAX_RESPONSE_HEAD];
        assert!(check_response(&huge, KEY, &[], None).is_err());
    }

    #[test]
    fn the_request_offers_protocols_and_extra_headers() {
        let url = WsUrl::parse("ws://h:1/p").unwrap();
        let bytes = request(
            &url,
            KEY,
            &["a".into(), "b".into()],
            &[("X-Token".into(), "t".into())],
            None,
        );
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.starts_with("GET /p HTTP/1.1\r\nHost: h:1\r\n"), "{text}");
        assert!(
            text.contains("Sec-WebSocket-Protocol: a, b\r\n") && text.contains("X-Token: t\r\n"),
            "{text}"
        );
        assert_eq!(new_key().len(), 24);
        assert_ne!(new_key(), new_key());
    }
}
