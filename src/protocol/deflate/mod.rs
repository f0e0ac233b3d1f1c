//! permessage-deflate (RFC 7692): negotiation, and compressing and inflating message payloads.
//!
//! Work in progress for issue 17: the pieces here are complete and tested on their own, and not
//! yet wired into the handshake or the connection state (so nothing negotiates it yet). What
//! remains is listed in issue 17's progress note.

// Wired in by issue 17's next steps; until then only the tests call these.
#![allow(dead_code)]

pub(crate) mod codec;
pub(crate) mod negotiate;
