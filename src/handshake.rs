//! The server side of the opening handshake (RFC 6455 §4.2): checks and the rejection type.

use actix_web::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use actix_web::http::{Method, StatusCode, Version};
use actix_web::{HttpRequest, HttpResponse, ResponseError};
use base64::Engine;
use sha1::{Digest, Sha1};

/// The GUID RFC 6455 §1.3 appends to the client's key to make the accept value.
const WEBSOCKET_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Why a WebSocket handshake was refused. Each variant is answered with its own HTTP status
/// ([`HandshakeRejection::status`]) and a one-line body saying what was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HandshakeRejection {
    /// Not a GET (405).
    #[error("a WebSocket handshake is a GET request")]
    NotGet,
    /// A request older than HTTP/1.1 (400): RFC 6455 §4.1 requires HTTP/1.1 or later.
    #[error("a WebSocket handshake needs HTTP/1.1 or later")]
    OldHttpVersion,
    /// No `Upgrade: websocket` header: a plain HTTP request reached a WebSocket route (426).
    #[error("this is a WebSocket endpoint: send `Upgrade: websocket`")]
    NotUpgrade,
    /// `Upgrade: websocket` without `Connection: upgrade` (400).
    #[error("missing `Connection: upgrade`")]
    NoConnectionUpgrade,
    /// A `Sec-WebSocket-Version` other than 13 (426, with `Sec-WebSocket-Version: 13`).
    #[error("unsupported Sec-WebSocket-Version (this server speaks 13)")]
    UnsupportedVersion,
    /// No `Sec-WebSocket-Key`, or one that is not 16 bytes in base64 (400).
    #[error("missing or malformed Sec-WebSocket-Key")]
    BadKey,
    /// More than one `Sec-WebSocket-Key` header (400): RFC 6455 §4.2.1 allows exactly one.
    #[error("Sec-WebSocket-Key appears more than once")]
    DuplicateKey,
    /// The `Origin` is not in the route's allow-list (403).
    #[error("origin not allowed")]
    OriginNotAllowed,
    /// The route holds its maximum of connections (503).
    #[error("too many connections, try again later")]
    TooManyConnections,
    /// The hub's supervisor is too busy to register another session (503).
    #[error("the server is busy, try again later")]
    Overloaded,
    /// The route's handshake hook refused, with this status and reason.
    #[error("{reason}")]
    Refused {
        /// The HTTP status to answer with.
        status: StatusCode,
        /// A one-line explanation for the body.
        reason: String,
    },
}

impl HandshakeRejection {
    /// A refusal from a handshake hook, answered with `status` (use a 4xx or 5xx).
    pub fn refused(status: StatusCode, reason: impl Into<String>) -> HandshakeRejection {
        HandshakeRejection::Refused {
            status,
            reason: reason.into(),
        }
    }

    /// The HTTP status this rejection is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            HandshakeRejection::NotGet => StatusCode::METHOD_NOT_ALLOWED,
            HandshakeRejection::NotUpgrade | HandshakeRejection::UnsupportedVersion => StatusCode::UPGRADE_REQUIRED,
            HandshakeRejection::OldHttpVersion
            | HandshakeRejection::NoConnectionUpgrade
            | HandshakeRejection::BadKey
            | HandshakeRejection::DuplicateKey => StatusCode::BAD_REQUEST,
            HandshakeRejection::OriginNotAllowed => StatusCode::FORBIDDEN,
            HandshakeRejection::TooManyConnections | HandshakeRejection::Overloaded => StatusCode::SERVICE_UNAVAILABLE,
            HandshakeRejection::Refused { status, .. } => *status,
        }
    }
}

impl ResponseError for HandshakeRejection {
    fn status_code(&self) -> StatusCode {
        self.status()
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status());
        if self.status() == StatusCode::UPGRADE_REQUIRED {
            response.insert_header((header::UPGRADE, "websocket"));
            response.insert_header((header::SEC_WEBSOCKET_VERSION, "13"));
        }
        response
            .content_type("text/plain; charset=utf-8")
            .body(format!("{self}\n"))
    }
}

/// What the route accepts: allowed origins and offered subprotocols.
#[derive(Debug, Clone, Default)]
pub(crate) struct Policy {
    /// `None` allows every origin (and requests without one).
    pub(crate) origins: Option<Vec<String>>,
    /// In order of preference.
    pub(crate) protocols: Vec<String>,
}

impl Policy {
    /// Every origin, and `protocols` in this order of preference (session actors' policy:
    /// actix-web-actors checked no origin).
    pub(crate) fn any_origin(protocols: &[&str]) -> Policy {
        Policy {
            origins: None,
            protocols: protocols.iter().map(|p| p.to_string()).collect(),
        }
    }
}

/// A handshake that passed the checks.
#[derive(Debug)]
pub(crate) struct Accepted {
    pub(crate) accept: String,
    pub(crate) protocol: Option<String>,
}

/// Checks `req` against RFC 6455 §4.2.1 and the route's policy.
pub(crate) fn check(req: &HttpRequest, policy: &Policy) -> Result<Accepted, HandshakeRejection> {
    check_headers(req.method(), req.version(), req.headers(), policy)
}

pub(crate) fn check_headers(
    method: &Method,
    version: Version,
    headers: &HeaderMap,
    policy: &Policy,
) -> Result<Accepted, HandshakeRejection> {
    if method != Method::GET {
        return Err(HandshakeRejection::NotGet);
    }
    if version < Version::HTTP_11 {
        return Err(HandshakeRejection::OldHttpVersion);
    }
    if !header_has_token(headers, &header::UPGRADE, "websocket") {
        return Err(HandshakeRejection::NotUpgrade);
    }
    if !header_has_token(headers, &header::CONNECTION, "upgrade") {
        return Err(HandshakeRejection::NoConnectionUpgrade);
    }
    if headers.get(header::SEC_WEBSOCKET_VERSION).map(HeaderValue::as_bytes) != Some(b"13") {
        return Err(HandshakeRejection::UnsupportedVersion);
    }
    let mut keys = headers.get_all(header::SEC_WEBSOCKET_KEY);
    let key = keys.next().ok_or(HandshakeRejection::BadKey)?;
    if keys.next().is_some() {
        return Err(HandshakeRejection::DuplicateKey);
    }
    if !is_valid_key(key.as_bytes()) {
        return Err(HandshakeRejection::BadKey);
    }
    if let Some(allowed) = &policy.origins {
        let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
        if !origin.is_some_and(|o| allowed.iter().any(|a| a.eq_ignore_ascii_case(o))) {
            return Err(HandshakeRejection::OriginNotAllowed);
        }
    }
    Ok(Accepted {
        accept: accept_key(key.as_bytes()),
        protocol: select_protocol(headers, &policy.protocols),
    })
}

/// The `Sec-WebSocket-Accept` value for a client's `Sec-WebSocket-Key`.
pub fn accept_key(key: &[u8]) -> String {
    let mut sha1 = Sha1::new();
    sha1.update(key);
    sha1.update(WEBSOCKET_GUID.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(sha1.finalize())
}

/// A key is the base64 encoding of 16 bytes (RFC 6455 §4.1).
fn is_valid_key(key: &[u8]) -> bool {
    key.len() == 24
        && base64::engine::general_purpose::STANDARD
            .decode(key)
            .is_ok_and(|decoded| decoded.len() == 16)
}

/// Whether any comma-separated element of any `name` header equals `token`, ignoring case.
fn header_has_token(headers: &HeaderMap, name: &HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// The first of our protocols (in our order of preference) that the client offers.
fn select_protocol(headers: &HeaderMap, ours: &[String]) -> Option<String> {
    let offered: Vec<&str> = headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    ours.iter().find(|p| offered.contains(&p.as_str())).cloned()
}

#[cfg(test)]
mod tests;
