//! What one node tells the others through the broker, as bytes: a broadcast, a message for one
//! session, or a presence diff, with the publishing node and its sequence number.
//!
//! The message is encoded once per node: the publisher writes one envelope whatever the number of
//! nodes and members, and each receiving node decodes it once and fans it out locally.
//!
//! ```text
//! version u8 (1) | kind u8 | origin node u64 | epoch u32 | seq u64 | body
//! broadcast body:  except session u64 (0: none) | opcode u8 (1 text, 2 binary) | payload
//! session body:    target session u64           | opcode u8                     | payload
//! presence body:   member session u64           | user (UTF-8, empty: none)
//! ```
//!
//! Integers are big-endian. Decoding checks everything: a malformed envelope is an error, never a
//! panic.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::rooms::{Member, PresenceChange};
use super::session::SessionId;
use crate::message::{Message, Text};

const VERSION: u8 = 1;
const HEADER_LEN: usize = 1 + 1 + 8 + 4 + 8;

/// Where an envelope came from and its place in that node's stream on its topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stamp {
    /// The publishing hub's node number (random per hub).
    pub(crate) origin: u64,
    /// Bumped when the publisher forgets its sequence numbers, so that a restart from 1 is not
    /// taken for a gap.
    pub(crate) epoch: u32,
    /// 1, 2, 3... per topic, counting publishes the broker refused too, so receivers see the gap.
    pub(crate) seq: u64,
}

/// What an envelope carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Body {
    /// A message for every local session of the topic's route, room or user.
    Broadcast {
        /// A session to leave out (typically the sender).
        except: Option<SessionId>,
        /// The message.
        message: Message,
    },
    /// A message for one session, on its node's topic.
    ToSession {
        /// The session.
        id: SessionId,
        /// The message.
        message: Message,
    },
    /// A member of the topic's room joined or left on the publishing node.
    Presence {
        /// Joined or left.
        change: PresenceChange,
        /// Who.
        member: Member,
    },
}

/// Why an envelope could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Malformed {
    #[error("shorter than its header or body")]
    Truncated,
    #[error("unknown version or kind")]
    Unknown,
    #[error("text that is not UTF-8")]
    NotUtf8,
}

const BROADCAST: u8 = 1;
const TO_SESSION: u8 = 2;
const JOINED: u8 = 3;
const LEFT: u8 = 4;
const TEXT: u8 = 1;
const BINARY: u8 = 2;

/// Writes `body` with `stamp`.
pub(crate) fn encode(stamp: Stamp, body: &Body) -> Bytes {
    let mut out = BytesMut::with_capacity(HEADER_LEN + 9 + body_len(body));
    let kind = match body {
        Body::Broadcast { .. } => BROADCAST,
        Body::ToSession { .. } => TO_SESSION,
        Body::Presence {
            change: PresenceChange::Joined,
            ..
        } => JOINED,
        Body::Presence {
            change: PresenceChange::Left,
            ..
        } => LEFT,
    };
    out.put_u8(VERSION);
    out.put_u8(kind);
    out.put_u64(stamp.origin);
    out.put_u32(stamp.epoch);
    out.put_u64(stamp.seq);
    match body {
        Body::Broadcast { except, message } => {
            out.put_u64(except.map_or(0, SessionId::as_u64));
            put_message(&mut out, message);
        }
        Body::ToSession { id, message } => {
            out.put_u64(id.as_u64());
            put_message(&mut out, message);
        }
        Body::Presence { member, .. } => {
            out.put_u64(member.id.as_u64());
            out.put_slice(member.user.as_deref().unwrap_or_default().as_bytes());
        }
    }
    out.freeze()
}

fn body_len(body: &Body) -> usize {
    match body {
        Body::Broadcast { message, .. } | Body::ToSession { message, .. } => message.len(),
        Body::Presence { member, .. } => member.user.as_ref().map_or(0, String::len),
    }
}

fn put_message(out: &mut BytesMut, message: &Message) {
    match message {
        Message::Text(text) => {
            out.put_u8(TEXT);
            out.put_slice(text.as_bytes());
        }
        Message::Binary(bytes) => {
            out.put_u8(BINARY);
            out.put_slice(bytes);
        }
    }
}

/// Reads an envelope; the payload shares `bytes`' storage.
///
/// # Errors
///
/// [`Malformed`] for anything [`encode`] would not have written.
pub(crate) fn decode(mut bytes: Bytes) -> Result<(Stamp, Body), Malformed> {
    if bytes.len() < HEADER_LEN + 8 {
        return Err(Malformed::Truncated);
    }
    let (version, kind) = (bytes.get_u8(), bytes.get_u8());
    if version != VERSION {
        return Err(Malformed::Unknown);
    }
    let stamp = Stamp {
        origin: bytes.get_u64(),
        epoch: bytes.get_u32(),
        seq: bytes.get_u64(),
    };
    let id = bytes.get_u64();
    let body = match kind {
        BROADCAST => Body::Broadcast {
            except: (id != 0).then(|| SessionId::from_u64(id)),
            message: take_message(bytes)?,
        },
        TO_SESSION => Body::ToSession {
            id: SessionId::from_u64(id),
            message: take_message(bytes)?,
        },
        JOINED | LEFT => {
            let user = String::from_utf8(bytes.to_vec()).map_err(|_| Malformed::NotUtf8)?;
            Body::Presence {
                change: if kind == JOINED {
                    PresenceChange::Joined
                } else {
                    PresenceChange::Left
                },
                member: Member {
                    id: SessionId::from_u64(id),
                    user: (!user.is_empty()).then_some(user),
                },
            }
        }
        _ => return Err(Malformed::Unknown),
    };
    Ok((stamp, body))
}

fn take_message(mut bytes: Bytes) -> Result<Message, Malformed> {
    if bytes.is_empty() {
        return Err(Malformed::Truncated);
    }
    match bytes.get_u8() {
        TEXT => Text::try_from(bytes).map(Message::Text).map_err(|_| Malformed::NotUtf8),
        BINARY => Ok(Message::Binary(bytes)),
        _ => Err(Malformed::Unknown),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAMP: Stamp = Stamp {
        origin: 0xfeed_beef,
        epoch: 7,
        seq: 42,
    };

    fn round_trip(body: Body) {
        let bytes = encode(STAMP, &body);
        assert_eq!(decode(bytes), Ok((STAMP, body)));
    }

    #[test]
    fn every_kind_round_trips() {
        let id = SessionId::from_u64(9);
        round_trip(Body::Broadcast {
            except: None,
            message: Message::from("hé"),
        });
        round_trip(Body::Broadcast {
            except: Some(id),
            message: Message::from(vec![0u8, 255]),
        });
        round_trip(Body::ToSession {
            id,
            message: Message::from(""),
        });
        for change in [PresenceChange::Joined, PresenceChange::Left] {
            round_trip(Body::Presence {
                change,
                member: Member {
                    id,
                    user: Some("Zoë".into()),
                },
            });
            round_trip(Body::Presence {
                change,
                member: Member { id, user: None },
            });
        }
    }

    #[test]
    fn malformed_envelopes_are_errors() {
        let good = encode(
            STAMP,
            &Body::ToSession {
                id: SessionId::from_u64(1),
                message: Message::from("x"),
            },
        );
        for len in 0..good.len() - 1 {
            assert!(decode(good.slice(..len)).is_err(), "cut at {len}");
        }
        let mut bad_text = good.to_vec();
        *bad_text.last_mut().unwrap() = 0xff;
        assert_eq!(decode(bad_text.into()), Err(Malformed::NotUtf8));
        let mut bad_kind = good.to_vec();
        bad_kind[1] = 99;
        assert_eq!(decode(bad_kind.into()), Err(Malformed::Unknown));
        let mut bad_version = good.to_vec();
        bad_version[0] = 2;
        assert_eq!(decode(bad_version.into()), Err(Malformed::Unknown));
    }
}
