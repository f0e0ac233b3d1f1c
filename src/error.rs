//! Errors of the WebSocket handle.

use crate::message::Message;

use crate::protocol::CloseCode;

/// A close code that may not be sent in a close frame (RFC 6455 §7.4): 1005, 1006 and 1015
/// report how a connection ended and never appear on the wire; codes below 1000, 1004, 1016 to
/// 2999 and from 5000 up are not assigned. Use 1000 to 1003, 1007 to 1014, or an application
/// code from 4000 to 4999.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("close code {} may not be sent in a close frame (RFC 6455 §7.4)", .0 .0)]
pub struct InvalidCloseCode(pub CloseCode);

/// Why a message sent with [`WebSocket::send`](crate::WebSocket::send) was not written.
///
/// Every variant hands the message back, so the caller can retry it elsewhere or log it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The connection was closing or closed when `send` was called; nothing was queued.
    /// Stop sending to this socket.
    #[error("the WebSocket is closed")]
    Closed(Message),
    /// The connection's outbound queue is over
    /// [`Config::max_outbound_queue`](crate::Config::max_outbound_queue): the peer is not reading.
    /// The connection is being closed with 1008.
    #[error("the WebSocket's outbound queue is full")]
    QueueFull(Message),
    /// The message was queued, but the connection ended before it was written.
    #[error("the WebSocket closed before the message was written")]
    NotWritten(Message),
    /// A ping payload over 125 bytes (RFC 6455 §5.5). Send a shorter one.
    #[error("a ping payload has at most 125 bytes")]
    PingTooLong(Message),
}

impl SendError {
    /// The message that was not sent.
    pub fn into_inner(self) -> Message {
        match self {
            SendError::Closed(m) | SendError::QueueFull(m) | SendError::NotWritten(m) | SendError::PingTooLong(m) => m,
        }
    }
}
