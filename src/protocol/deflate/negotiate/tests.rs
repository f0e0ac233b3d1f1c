use super::*;

const SHARED: ServerPolicy = ServerPolicy {
    context_takeover: false,
    max_window_bits: 15,
};
const DEDICATED_12: ServerPolicy = ServerPolicy {
    context_takeover: true,
    max_window_bits: 12,
};

fn answer(policy: ServerPolicy, header: &str) -> Option<String> {
    policy.accept([header]).map(|a| a.response_header())
}

#[test]
fn a_browser_offer_is_answered_per_mode() {
    let chrome = "permessage-deflate; client_max_window_bits";
    assert_eq!(
        answer(SHARED, chrome).as_deref(),
        Some("permessage-deflate; server_no_context_takeover; client_no_context_takeover")
    );
    assert_eq!(
        answer(DEDICATED_12, chrome).as_deref(),
        Some("permessage-deflate; server_max_window_bits=12; client_max_window_bits=12")
    );
}

#[test]
fn the_first_offer_we_can_honour_wins_and_others_are_declined() {
    let offers =
        "x-webkit-deflate-frame, permessage-deflate; unknown_param, permessage-deflate; server_max_window_bits=10";
    assert_eq!(
        answer(DEDICATED_12, offers).as_deref(),
        Some("permessage-deflate; server_max_window_bits=10"),
        "a client that did not offer client_max_window_bits is not capped"
    );
    // Offers split over several header lines count the same.
    let agreed = DEDICATED_12.accept(["foo", "permessage-deflate; client_no_context_takeover"]);
    assert_eq!(agreed.map(|a| a.client_no_context_takeover), Some(true));
    assert_eq!(answer(SHARED, "foo, bar; baz=1"), None);
}

#[test]
fn invalid_offers_are_declined_not_half_accepted() {
    for bad in [
        "permessage-deflate; server_max_window_bits",       // needs a value
        "permessage-deflate; server_max_window_bits=7",     // below 8
        "permessage-deflate; server_max_window_bits=16",    // above 15
        "permessage-deflate; server_max_window_bits=010",   // leading zero
        "permessage-deflate; client_max_window_bits=+9",    // not 1*DIGIT
        "permessage-deflate; server_no_context_takeover=1", // takes no value
        "permessage-deflate; client_no_context_takeover; client_no_context_takeover",
        "permessage-deflate; client_max_window_bits; client_max_window_bits=10",
        "permessage-deflate; mystery",
        "permessage-deflate; client_max_window_bits=\"10", // unterminated quote
        "permessage deflate",
    ] {
        assert_eq!(answer(SHARED, bad), None, "{bad}");
    }
    assert_eq!(
        answer(DEDICATED_12, "permessage-deflate; client_max_window_bits=\"9\"").as_deref(),
        Some("permessage-deflate; server_max_window_bits=12; client_max_window_bits=9"),
        "a quoted value is the value"
    );
}

#[test]
fn the_client_checks_the_answer_against_its_offer() {
    let offer = ClientOffer {
        server_no_context_takeover: false,
        client_no_context_takeover: false,
        server_max_window_bits: 12,
        client_max_window_bits: 15,
    };
    assert_eq!(
        offer.header(),
        "permessage-deflate; server_max_window_bits=12; client_max_window_bits=15"
    );
    assert_eq!(offer.check([]), Ok(None), "declined");
    let agreed = offer.check(["permessage-deflate; server_max_window_bits=9; client_max_window_bits=10"]);
    assert_eq!(
        agreed,
        Ok(Some(Agreed {
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            server_max_window_bits: 9,
            client_max_window_bits: 10,
        }))
    );
    for bad in [
        "permessage-deflate",                                                   // window 15 > our 12
        "permessage-deflate; server_max_window_bits=13",                        // above what we allowed
        "permessage-deflate; server_max_window_bits=9; client_max_window_bits", // needs a value
        "x-webkit-deflate-frame",                                               // not offered
        "permessage-deflate; server_max_window_bits=9, permessage-deflate; server_max_window_bits=9",
    ] {
        assert!(offer.check([bad]).is_err(), "{bad}");
    }
    let strict = ClientOffer {
        server_no_context_takeover: true,
        ..offer
    };
    assert!(strict.check(["permessage-deflate; server_max_window_bits=9"]).is_err());
}

#[test]
fn our_own_answers_satisfy_our_own_client() {
    for policy in [
        SHARED,
        DEDICATED_12,
        ServerPolicy {
            context_takeover: true,
            max_window_bits: 8,
        },
    ] {
        for offer in [
            ClientOffer {
                server_no_context_takeover: false,
                client_no_context_takeover: false,
                server_max_window_bits: 15,
                client_max_window_bits: 15,
            },
            ClientOffer {
                server_no_context_takeover: true,
                client_no_context_takeover: true,
                server_max_window_bits: 9,
                client_max_window_bits: 11,
            },
        ] {
            let agreed = policy.accept([offer.header().as_str()]).unwrap();
            let seen = offer.check([agreed.response_header().as_str()]).unwrap();
            assert_eq!(seen, Some(agreed), "{policy:?} {offer:?}");
        }
    }
}
