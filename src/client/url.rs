//! Parsing `ws://` and `wss://` URLs (RFC 6455 §3).

use super::error::ConnectError;

/// The parts of a WebSocket URL the client needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WsUrl {
    /// `wss`: TLS.
    pub(crate) secure: bool,
    /// Host name or IP address, without IPv6 brackets.
    pub(crate) host: String,
    pub(crate) port: u16,
    /// Path and query, at least `/`.
    pub(crate) resource: String,
}

impl WsUrl {
    /// Parses `url`.
    ///
    /// # Errors
    ///
    /// [`ConnectError::InvalidUrl`] for another scheme, a missing host, a bad port or a fragment.
    pub(crate) fn parse(url: &str) -> Result<WsUrl, ConnectError> {
        let invalid = |why: &str| ConnectError::InvalidUrl {
            url: url.to_owned(),
            why: why.to_owned(),
        };
        let (secure, rest) = if let Some(rest) = strip_prefix_ignore_case(url, "wss://") {
            (true, rest)
        } else if let Some(rest) = strip_prefix_ignore_case(url, "ws://") {
            (false, rest)
        } else {
            return Err(invalid("the scheme must be ws:// or wss://"));
        };
        if rest.contains('#') {
            return Err(invalid("a WebSocket URL has no fragment"));
        }
        let (authority, resource) = match rest.find(['/', '?']) {
            Some(at) => rest.split_at(at),
            None => (rest, "/"),
        };
        let resource = if resource.starts_with('?') {
            format!("/{resource}")
        } else {
            resource.to_owned()
        };
        if authority.contains('@') {
            return Err(invalid("user information is not supported"));
        }
        let (host, port) = split_host_port(authority).ok_or_else(|| invalid("bad host or port"))?;
        if host.is_empty() {
            return Err(invalid("missing host"));
        }
        let port = match port {
            Some(port) => port.parse::<u16>().map_err(|_| invalid("bad port"))?,
            None if secure => 443,
            None => 80,
        };
        Ok(WsUrl {
            secure,
            host: host.to_owned(),
            port,
            resource,
        })
    }

    /// The `Host` header value.
    pub(crate) fn host_header(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        match (self.secure, self.port) {
            (false, 80) | (true, 443) => host,
            (_, port) => format!("{host}:{port}"),
        }
    }
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| s.get(prefix.len()..))
        .flatten()
}

/// Splits `host:port`, `[v6]:port`, `host` or `[v6]`.
fn split_host_port(authority: &str) -> Option<(&str, Option<&str>)> {
    if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        return match after {
            "" => Some((host, None)),
            _ => Some((host, Some(after.strip_prefix(':')?))),
        };
    }
    match authority.rsplit_once(':') {
        Some((host, port)) => Some((host, Some(port))),
        None => Some((authority, None)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_usual_forms() {
        let url = WsUrl::parse("ws://127.0.0.1:9001/echo?x=1").unwrap();
        assert_eq!(
            (url.secure, url.host.as_str(), url.port, url.resource.as_str()),
            (false, "127.0.0.1", 9001, "/echo?x=1")
        );
        let url = WsUrl::parse("WSS://example.com").unwrap();
        assert_eq!((url.secure, url.port, url.resource.as_str()), (true, 443, "/"));
        assert_eq!(url.host_header(), "example.com");
        let url = WsUrl::parse("ws://[::1]:8080?q").unwrap();
        assert_eq!((url.host.as_str(), url.resource.as_str()), ("::1", "/?q"));
        assert_eq!(url.host_header(), "[::1]:8080");
    }

    #[test]
    fn refuses_what_is_not_a_websocket_url() {
        for bad in [
            "http://x/",
            "ws://",
            "ws://host:99999/",
            "ws://host/#frag",
            "ws://u@host/",
            "ws://[::1/",
        ] {
            assert!(
                matches!(WsUrl::parse(bad), Err(ConnectError::InvalidUrl { .. })),
                "{bad}"
            );
        }
    }
}
