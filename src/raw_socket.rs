//! Closing a WebSocket's TCP socket under actix-web's `HttpServer`, where the dispatcher owns it.
//!
//! Once a peer stops reading, actix-web's dispatcher stops polling the response body and waits
//! on its write forever: nothing a WebSocket does through the body reaches the socket again.
//! [`on_connect`] keeps a duplicate of each connection's descriptor, so that the connection can
//! shut the socket down when its write timeout or close timeout passes; the dispatcher's write
//! then fails and it lets the connection go. `switchboard::Server` needs none of this: there a
//! connection owns its socket.

use std::any::Any;
use std::rc::{Rc, Weak};

use actix_web::dev::Extensions;
use actix_web::HttpRequest;

/// A duplicate of a connection's socket descriptor, in the connection's data.
#[derive(Debug)]
struct ConnectionSocket(Rc<Fd>);

#[cfg(unix)]
type Fd = std::os::fd::OwnedFd;
#[cfg(not(unix))]
type Fd = ();

/// An `HttpServer::on_connect` callback that lets switchboard close the sockets of WebSockets
/// whose peer stopped reading (see [`Config::write_timeout`](crate::Config::write_timeout)).
///
/// ```no_run
/// use actix_web::{App, HttpServer};
///
/// # async fn run() -> std::io::Result<()> {
/// HttpServer::new(|| App::new().service(switchboard::websocket("/ws", |_, _| {})))
///     .on_connect(switchboard::on_connect)
///     .bind(("127.0.0.1", 8080))?
///     .run()
///     .await
/// # }
/// ```
///
/// It knows plain TCP connections; on others (TLS under `HttpServer`) it does nothing, and a
/// peer that never reads keeps its socket until the kernel gives up on it.
pub fn on_connect(connection: &dyn Any, data: &mut Extensions) {
    #[cfg(unix)]
    {
        use std::os::fd::AsFd;
        let Some(tcp) = connection.downcast_ref::<actix_web::rt::net::TcpStream>() else {
            return;
        };
        match tcp.as_fd().try_clone_to_owned() {
            Ok(fd) => {
                data.insert(ConnectionSocket(Rc::new(fd)));
            }
            Err(error) => log::warn!("cannot keep a handle on a connection's socket: {error}"),
        }
    }
    #[cfg(not(unix))]
    let _ = (connection, data);
}

/// A weak handle on the socket under a request, when [`on_connect`] kept one. Weak, so that it
/// never keeps the socket open after the dispatcher has let it go.
#[derive(Debug, Clone, Default)]
pub(crate) struct RawSocket(Option<Weak<Fd>>);

impl RawSocket {
    /// The handle [`on_connect`] left for `req`'s connection, if any.
    pub(crate) fn of(req: &HttpRequest) -> RawSocket {
        RawSocket(req.conn_data::<ConnectionSocket>().map(|s| Rc::downgrade(&s.0)))
    }

    /// Shuts the socket down both ways, if it is still open: a write blocked on it fails.
    pub(crate) fn shutdown(&self) {
        #[cfg(unix)]
        if let Some(fd) = self.0.as_ref().and_then(Weak::upgrade) {
            let _ = socket2::SockRef::from(&*fd).shutdown(std::net::Shutdown::Both);
        }
    }
}
