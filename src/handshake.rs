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
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(HeaderName::from_static(name), HeaderValue::from_static(value));
        }
        map
    }

    const GOOD: &[(&str, &str)] = &[
        ("upgrade", "websocket"),
        ("connection", "keep-alive, Upgrade"),
        ("sec-websocket-version", "13"),
        ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ];

    fn check(pairs: &[(&'static str, &'static str)], policy: &Policy) -> Result<Accepted, HandshakeRejection> {
        check_headers(&Method::GET, Version::HTTP_11, &headers(pairs), policy)
    }

    #[test]
    fn accepts_the_rfc_example_with_its_accept_value() {
        let accepted = check(GOOD, &Policy::default()).unwrap();
        assert_eq!(accepted.accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    #[test]
    fn each_missing_piece_has_its_own_rejection() {
        let without = |name: &str| GOOD.iter().copied().filter(|(n, _)| *n != name).collect::<Vec<_>>();
        let policy = Policy::default();
        assert_eq!(
            check(&without("upgrade"), &policy).unwrap_err(),
            HandshakeRejection::NotUpgrade
        );
        assert_eq!(
            check(&without("connection"), &policy).unwrap_err(),
            HandshakeRejection::NoConnectionUpgrade
        );
        assert_eq!(
            check(&without("sec-websocket-version"), &policy).unwrap_err(),
            HandshakeRejection::UnsupportedVersion
        );
        assert_eq!(
            check(&without("sec-websocket-key"), &policy).unwrap_err(),
            HandshakeRejection::BadKey
        );
        let post = check_headers(&Method::POST, Version::HTTP_11, &headers(GOOD), &policy);
        assert_eq!(post.unwrap_err(), HandshakeRejection::NotGet);
    }

    #[test]
    fn malformed_keys_and_versions_are_refused() {
        let mut bad_key = without_key();
        bad_key.push(("sec-websocket-key", "c2hvcnQ="));
        assert_eq!(
            check(&bad_key, &Policy::default()).unwrap_err(),
            HandshakeRejection::BadKey
        );
        let mut v8: Vec<_> = GOOD
            .iter()
            .copied()
            .filter(|(n, _)| *n != "sec-websocket-version")
            .collect();
        v8.push(("sec-websocket-version", "8"));
        assert_eq!(
            check(&v8, &Policy::default()).unwrap_err(),
            HandshakeRejection::UnsupportedVersion
        );
    }

    fn without_key() -> Vec<(&'static str, &'static str)> {
        GOOD.iter()
            .copied()
            .filter(|(n, _)| *n != "sec-websocket-key")
            .collect()
    }

    #[test]
    fn origins_are_checked_against_the_allow_list() {
        let policy = Policy {
            origins: Some(vec!["https://good.example".into()]),
            protocols: vec![],
        };
        assert_eq!(check(GOOD, &policy).unwrap_err(), HandshakeRejection::OriginNotAllowed);
        let mut evil = GOOD.to_vec();
        evil.push(("origin", "https://evil.example"));
        assert_eq!(check(&evil, &policy).unwrap_err(), HandshakeRejection::OriginNotAllowed);
        let mut good = GOOD.to_vec();
        good.push(("origin", "https://good.example"));
        assert!(check(&good, &policy).is_ok());
    }

    #[test]
    fn the_first_of_our_protocols_the_client_offers_is_chosen() {
        let policy = Policy {
            origins: None,
            protocols: vec!["v2".into(), "v1".into()],
        };
        let mut offer = GOOD.to_vec();
        offer.push(("sec-websocket-protocol", "v1, v2"));
        assert_eq!(check(&offer, &policy).unwrap().protocol.as_deref(), Some("v2"));
        assert_eq!(check(GOOD, &policy).unwrap().protocol, None);
    }

    #[test]
    fn rejections_map_to_their_statuses() {
        assert_eq!(HandshakeRejection::NotUpgrade.status(), StatusCode::UPGRADE_REQUIRED);
        assert_eq!(HandshakeRejection::BadKey.status(), StatusCode::BAD_REQUEST);
        assert_eq!(HandshakeRejection::OriginNotAllowed.status(), StatusCode::FORBIDDEN);
        assert_eq!(
            HandshakeRejection::TooManyConnections.status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        let response = HandshakeRejection::UnsupportedVersion.error_response();
        assert_eq!(response.headers().get(header::SEC_WEBSOCKET_VERSION).unwrap(), "13");
    }

    /// What `check_headers` must answer, worked out another way: the RFC's rules in order.
    fn expected(map: &HeaderMap, policy: &Policy) -> Result<Option<String>, HandshakeRejection> {
        let values = |name: &str| -> Vec<String> {
            map.get_all(name)
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .map(|t| t.trim().to_ascii_lowercase())
                .collect()
        };
        if !values("upgrade").iter().any(|t| t == "websocket") {
            return Err(HandshakeRejection::NotUpgrade);
        }
        if !values("connection").iter().any(|t| t == "upgrade") {
            return Err(HandshakeRejection::NoConnectionUpgrade);
        }
        if map.get("sec-websocket-version").map(|v| v.as_bytes()) != Some(b"13") {
            return Err(HandshakeRejection::UnsupportedVersion);
        }
        let keys: Vec<&HeaderValue> = map.get_all("sec-websocket-key").collect();
        match keys.as_slice() {
            [key]
                if base64::engine::general_purpose::STANDARD
                    .decode(key.as_bytes())
                    .is_ok_and(|k| k.len() == 16) => {}
            [] | [_] => return Err(HandshakeRejection::BadKey),
            _ => return Err(HandshakeRejection::DuplicateKey),
        }
        let origin = map.get("origin").and_then(|v| v.to_str().ok());
        let allowed = policy
            .origins
            .as_ref()
            .is_none_or(|list| origin.is_some_and(|o| list.iter().any(|a| a.eq_ignore_ascii_case(o))));
        if !allowed {
            return Err(HandshakeRejection::OriginNotAllowed);
        }
        let offered: Vec<String> = map
            .get_all("sec-websocket-protocol")
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|t| t.trim().to_owned())
            .collect();
        Ok(policy.protocols.iter().find(|p| offered.contains(p)).cloned())
    }

    /// Header values drawn mostly from what a handshake holds, so that every rule is reached.
    fn value() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
        use proptest::prelude::*;
        prop_oneof![
            Just(b"websocket".to_vec()),
            Just(b"keep-alive, Upgrade".to_vec()),
            Just(b"13".to_vec()),
            Just(b"dGhlIHNhbXBsZSBub25jZQ==".to_vec()),
            Just(b"https://a.example".to_vec()),
            Just(b"p".to_vec()),
            proptest::collection::vec(0x20u8..0x7f, 0..30),
        ]
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_headers_get_the_answer_the_rules_give(
            values in proptest::collection::vec(proptest::collection::vec(value(), 0..3), 6),
            origins in proptest::option::of(proptest::collection::vec(value(), 1..3)),
        ) {
            let names = ["upgrade", "connection", "sec-websocket-version", "sec-websocket-key", "origin", "sec-websocket-protocol"];
            let mut map = HeaderMap::new();
            for (name, values) in names.iter().zip(&values) {
                for value in values {
                    if let Ok(value) = HeaderValue::from_bytes(value) {
                        map.append(HeaderName::from_static(name), value);
                    }
                }
            }
            let origins = origins.map(|list| list.into_iter().map(|o| String::from_utf8_lossy(&o).into_owned()).collect());
            let policy = Policy { origins, protocols: vec!["p".into(), "q".into()] };
            let answer = check_headers(&Method::GET, Version::HTTP_11, &map, &policy);
            let want = expected(&map, &policy);
            match (&answer, &want) {
                (Ok(accepted), Ok(protocol)) => {
                    proptest::prop_assert_eq!(&accepted.protocol, protocol);
                    proptest::prop_assert_eq!(accepted.accept.len(), 28);
                }
                (Err(got), Err(wanted)) => {
                    proptest::prop_assert_eq!(got, wanted);
                    proptest::prop_assert!(got.status().is_client_error());
                }
                _ => proptest::prop_assert!(false, "{answer:?} where the rules say {want:?}"),
            }
        }
    }
}
