//! Errors of the hub.

use super::session::{SessionId, Undelivered};
use crate::protocol::CloseCode;

/// Why a hub request did not do what was asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HubError {
    /// The supervisor has stopped (its actix system is shutting down); no hub call will work again.
    #[error("the supervisor is not running")]
    SupervisorGone,
    /// No session has this id: it never existed or has already disconnected.
    #[error("no session {0}")]
    NoSuchSession(SessionId),
    /// The session exists but could not take the message; see [`Undelivered`].
    #[error("session {0} did not take the message: {1}")]
    Undelivered(SessionId, Undelivered),
    /// The supervisor's mailbox is full: it is busy. Nothing was done; retry later, or use the
    /// async method, which waits for room.
    #[error("the supervisor is busy (its mailbox is full)")]
    Full,
    /// The session is already in its maximum of rooms; it must leave one first.
    #[error("session {id} is already in {max} rooms, its maximum")]
    TooManyRooms {
        /// The session.
        id: SessionId,
        /// Its cap ([`Config::max_rooms`](crate::Config::max_rooms)).
        max: usize,
    },
    /// A close code that may not be sent in a close frame (RFC 6455 §7.4); nothing was sent.
    #[error("close code {} may not be sent in a close frame", .0 .0)]
    InvalidCloseCode(CloseCode),
}
