//! [`Config`]: every limit and timer of a connection, in one place.

use std::time::Duration;

/// The limits and timers of a WebSocket connection.
///
/// Set per route with [`WebSocketRoute::config`](crate::WebSocketRoute::config). Each field says
/// its default and when to change it; `docs/configuration.md` has the same table.
///
/// ```
/// use std::time::Duration;
/// use switchboard::Config;
///
/// let mut config = Config::default();
/// config.max_message_size = 64 << 10; // a chat: small messages only
/// config.ping_interval = Some(Duration::from_secs(5));
/// assert_eq!(config.max_frame_size, 16 << 20);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// The largest message, after reassembly of its fragments, a peer may send.
    ///
    /// Default 16 MiB. A bigger message closes the connection with 1009. Lower it to what your
    /// application exchanges: it bounds the memory one connection can make the server hold.
    pub max_message_size: usize,
    /// The largest single frame a peer may send.
    ///
    /// Default 16 MiB. A bigger frame closes the connection with 1009 as soon as its header is
    /// read, before its payload is buffered.
    pub max_frame_size: usize,
    /// The most encoded bytes waiting to be written to one peer.
    ///
    /// Default 32 MiB. When a peer reads slower than it is sent to, its queue grows; a send that
    /// would take it past this limit fails with [`SendError::QueueFull`](crate::SendError) and the
    /// connection is closed with 1008, so one slow reader cannot exhaust the server's memory.
    /// Raise it for bursty bulk transfers; lower it when you hold many connections.
    pub max_outbound_queue: usize,
    /// How often a ping is sent to check the peer is alive. `None` turns keepalive off.
    ///
    /// Default 20 s, below the 30 to 60 s after which proxies and NAT boxes tend to drop quiet
    /// connections. The same tick lets a quiet connection's spent read buffer go; with `None`,
    /// that buffer is kept until the connection's next read.
    pub ping_interval: Option<Duration>,
    /// How long after a keepalive ping the peer has to answer it with its pong.
    ///
    /// Default 20 s. Only the pong counts: it proves the peer reads what we send, where a peer
    /// that only writes (a ping flood, say) proves nothing. A peer that does not answer in time is
    /// dropped: its socket closes with code 1006 and a reason saying "keepalive timeout", logged
    /// at `warn` and counted. A peer sends its pong after the frame it is sending, so raise it
    /// above the time your largest message takes to arrive on a slow link.
    pub pong_timeout: Duration,
    /// How long the socket may accept no byte at all while frames wait to be written.
    ///
    /// Default 30 s. A peer that stops reading first fills the socket's buffers; past this time
    /// its connection is aborted (no close frame can reach it), logged at `warn` and counted
    /// (`write_timeouts`), so a peer that never reads cannot hold its socket and queue. `None`
    /// waits forever. Under actix-web's `HttpServer` the socket is closed too only when the
    /// server has [`on_connect`](crate::on_connect) set.
    pub write_timeout: Option<Duration>,
    /// How long to wait for the peer's close frame (or its end of the TCP stream) after ours.
    ///
    /// Default 5 s. After it the connection is dropped without further waiting.
    pub close_timeout: Duration,
    /// How long a peer may go without sending a text or binary message. `None` means forever.
    ///
    /// Default `None`. When it passes, the connection is closed with 1001 ("idle timeout").
    /// Pings and pongs do not count: keepalive proves the peer is there, this that it is in use.
    pub idle_timeout: Option<Duration>,
    /// The most connections this route holds at once. `None` means no limit.
    ///
    /// Default `None`. Over the limit the handshake is answered with HTTP 503, so a load balancer
    /// can try another node.
    pub max_connections: Option<usize>,
    /// The most rooms one session may be in at once ([`Hub::join`](crate::Hub::join)).
    ///
    /// Default 100. Past it a join fails with [`HubError::TooManyRooms`](crate::HubError): each
    /// room a session is in costs memory, and a leave to announce when it disconnects.
    pub max_rooms: usize,
    /// How many messages a session actor's bounded mailbox holds (see `switchboard::ws`).
    ///
    /// Default 1,024. Messages sent through a [`SessionAddr`](crate::ws::SessionAddr) (from
    /// [`Hub::addr`](crate::Hub::addr)) and intercepted hub broadcasts wait there until the actor
    /// handles them. When it is full, a message that may not be dropped closes the session with
    /// 1008 and a droppable one is dropped, both counted in metrics. Raise it for actors that
    /// take bursts; each waiting message costs its size plus about 64 bytes.
    pub mailbox_capacity: usize,
    /// How many times a supervised session actor may be restarted after a panic within
    /// `restart_window` before its connection is closed with 1011.
    ///
    /// Default 3. A panic that repeats on every message would otherwise restart forever; `0`
    /// closes on the first panic.
    pub max_restarts: u32,
    /// The window `max_restarts` counts in.
    ///
    /// Default 10 s.
    pub restart_window: Duration,
    /// permessage-deflate (RFC 7692), negotiated with peers that offer it (every browser does).
    ///
    /// Default [`Compression::Off`]: compression costs CPU on every message and, in the
    /// dedicated mode, memory per connection. [`Compression::Shared`] is the one line to turn it
    /// on for chat-style JSON; docs/compression.md compares the modes and their memory.
    pub compression: Compression,
    /// Messages shorter than this go uncompressed even when compression is on: deflating a few
    /// bytes costs more than it saves. Default 64 bytes.
    pub compression_threshold: usize,
}

/// How a connection compresses its messages (permessage-deflate, RFC 7692).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Compression {
    /// No compression: the extension is not negotiated.
    #[default]
    Off,
    /// No context takeover in either direction: each message is compressed on its own with the
    /// worker thread's compressor, so a connection holds no compression memory, and a room or
    /// route broadcast is deflated once for all its recipients. Compresses chat-style JSON a
    /// little less than [`Compression::Dedicated`].
    Shared,
    /// Context takeover: each connection keeps its own compressor and inflater, whose windows
    /// carry over from one message to the next (better ratios on repetitive traffic); each
    /// broadcast is deflated once per recipient.
    ///
    /// Memory: none until the connection compresses or inflates a message; then about 190 KB per
    /// connection with window 12 and memory level 5, 350 KB with 15 and 8 (the compressor keeps a
    /// 128 KiB hash table whatever the memory level). The compressor is given back when a
    /// keepalive interval ([`Config::ping_interval`]) passes with nothing compressed, which
    /// leaves about 30 KB; measured figures in docs/compression.md.
    Dedicated {
        /// The LZ77 window, 8 to 15 (32 KiB): the most our compressor uses and the most we let
        /// the peer's use, when it accepts a limit.
        window_bits: u8,
        /// The compressor's memory level, 1 to 9 (zlib's default is 8).
        mem_level: u8,
    },
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_message_size: 16 << 20,
            max_frame_size: 16 << 20,
            max_outbound_queue: 32 << 20,
            ping_interval: Some(Duration::from_secs(20)),
            pong_timeout: Duration::from_secs(20),
            close_timeout: Duration::from_secs(5),
            write_timeout: Some(Duration::from_secs(30)),
            idle_timeout: None,
            max_connections: None,
            max_rooms: 100,
            mailbox_capacity: 1024,
            max_restarts: 3,
            restart_window: Duration::from_secs(10),
            compression: Compression::Off,
            compression_threshold: 64,
        }
    }
}

/// Reads `off`, `shared`, `dedicated` (window 15, memory level 8) or `dedicated:W:M`, as the
/// examples' `--compression` flag takes it.
impl std::str::FromStr for Compression {
    type Err = String;

    fn from_str(s: &str) -> Result<Compression, String> {
        let bad = || format!("{s:?}: expected off, shared, dedicated or dedicated:WINDOW_BITS:MEM_LEVEL");
        let mut parts = s.split(':');
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some("off"), None, ..) => Ok(Compression::Off),
            (Some("shared"), None, ..) => Ok(Compression::Shared),
            (Some("dedicated"), None, ..) => Ok(Compression::Dedicated {
                window_bits: 15,
                mem_level: 8,
            }),
            (Some("dedicated"), Some(w), Some(m), None) => {
                let (window_bits, mem_level) = (w.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
                if !(8..=15).contains(&window_bits) || !(1..=9).contains(&mem_level) {
                    return Err(bad());
                }
                Ok(Compression::Dedicated { window_bits, mem_level })
            }
            _ => Err(bad()),
        }
    }
}
