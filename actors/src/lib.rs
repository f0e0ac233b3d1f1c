//! The socket-free actor core of [switchboard](https://docs.rs/switchboard).
//!
//! This crate knows nothing of sockets or HTTP. It holds:
//!
//! - [`message`](crate::Message): the [`Text`] and [`Message`] types sessions exchange, and
//!   [`Outgoing`], a message shared between recipients and encoded once;
//! - [`SessionId`] and the [`SessionSink`] a connection registers to receive deliveries;
//! - the [`Supervisor`] actor, the registry of routes and sessions;
//! - the [`Hub`], the cloneable handle any Rust code uses to reach sessions.
//!
//! It is tested with plain actors and in-memory sinks; the `switchboard` crate binds it to real
//! connections.

mod error;
mod fanout;
mod hub;
mod message;
mod metrics;
pub mod rooms;
pub mod runtime;
mod session;
pub mod supervisor;

pub use error::HubError;
pub use fanout::Home;
pub use hub::Hub;
pub use message::{Message, Outgoing, Text};
pub use metrics::{DropReason, Metrics, MetricsSnapshot};
pub use rooms::{Member, PresenceChange, PresenceEvent};
pub use session::{SessionId, SessionSink, Undelivered};
pub use supervisor::Supervisor;
