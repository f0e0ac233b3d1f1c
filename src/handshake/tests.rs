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
