//! permessage-deflate negotiation (RFC 7692 §5 and §7.1): reading the client's offers, choosing
//! one, writing the server's answer, and on the client's side checking that answer.
//!
//! An offer the server cannot honour is declined, never half-accepted: the server answers the
//! first offer it can take in full, or none (no extension, as RFC 7692 §5 allows), and a client
//! fails the connection (1010) when the server's answer is not one its offer allowed.

use std::fmt::Write;

/// The extension's name in `Sec-WebSocket-Extensions`.
pub(crate) const NAME: &str = "permessage-deflate";

/// The smallest and largest LZ77 window sizes the RFC allows, as bits.
pub(crate) const MIN_WINDOW_BITS: u8 = 8;
pub(crate) const MAX_WINDOW_BITS: u8 = 15;

/// What the server side is willing to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ServerPolicy {
    /// Keep the LZ77 window between messages in each direction (dedicated mode). Without it the
    /// answer asks both sides for no context takeover (shared mode: no per-connection state).
    pub(crate) context_takeover: bool,
    /// The largest window either side may use, 8 to 15.
    pub(crate) max_window_bits: u8,
}

/// What both sides agreed to, from the server's point of view: `server_*` is what the server
/// compresses with, `client_*` what it inflates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Agreed {
    pub(crate) server_no_context_takeover: bool,
    pub(crate) client_no_context_takeover: bool,
    pub(crate) server_max_window_bits: u8,
    pub(crate) client_max_window_bits: u8,
}

/// One offer's parameters, each at most once (a repeated one makes the offer invalid).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Params {
    server_no_context_takeover: bool,
    client_no_context_takeover: bool,
    server_max_window_bits: Option<u8>,
    /// `Some(None)`: offered without a value (the client supports the parameter).
    client_max_window_bits: Option<Option<u8>>,
}

/// Why an offer or an answer cannot be taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Invalid {
    #[error("malformed extension header")]
    Syntax,
    #[error("unknown parameter {0}")]
    UnknownParameter(String),
    #[error("parameter {0} given twice")]
    Duplicate(String),
    #[error("bad value for {0}")]
    BadValue(String),
    #[error("the server answered {0}, which the offer did not allow")]
    NotOffered(String),
}

/// An extension as a header lists it: its name and its `(name, value)` parameters.
type Extension = (String, Vec<(String, Option<String>)>);

/// Splits header values into extensions; quoted values are unquoted (RFC 7692 §7.1 allows
/// quoted-string values).
fn extensions<'a>(values: impl IntoIterator<Item = &'a str>) -> Result<Vec<Extension>, Invalid> {
    let mut out = Vec::new();
    for value in values {
        for extension in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let mut parts = extension.split(';').map(str::trim);
            let name = parts.next().filter(|n| is_token(n)).ok_or(Invalid::Syntax)?;
            let mut params = Vec::new();
            for part in parts {
                let (key, value) = match part.split_once('=') {
                    Some((key, value)) => (key.trim(), Some(unquote(value.trim())?)),
                    None => (part, None),
                };
                if !is_token(key) {
                    return Err(Invalid::Syntax);
                }
                params.push((key.to_ascii_lowercase(), value));
            }
            out.push((name.to_ascii_lowercase(), params));
        }
    }
    Ok(out)
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn unquote(value: &str) -> Result<String, Invalid> {
    let inner = match value.strip_prefix('"') {
        Some(rest) => rest.strip_suffix('"').ok_or(Invalid::Syntax)?,
        None => value,
    };
    if is_token(inner) {
        Ok(inner.to_owned())
    } else {
        Err(Invalid::Syntax)
    }
}

fn window_bits(key: &str, value: &str) -> Result<u8, Invalid> {
    // Digits only: "+9" or "09" are not the RFC's 1*DIGIT with no leading zero.
    let bits: u8 = (!value.starts_with('0') && value.bytes().all(|b| b.is_ascii_digit()))
        .then(|| value.parse().ok())
        .flatten()
        .ok_or_else(|| Invalid::BadValue(key.to_owned()))?;
    if (MIN_WINDOW_BITS..=MAX_WINDOW_BITS).contains(&bits) {
        Ok(bits)
    } else {
        Err(Invalid::BadValue(key.to_owned()))
    }
}

fn params(list: Vec<(String, Option<String>)>) -> Result<Params, Invalid> {
    let mut p = Params::default();
    for (key, value) in list {
        let duplicate = Invalid::Duplicate(key.clone());
        let bad_value = Invalid::BadValue(key.clone());
        match key.as_str() {
            "server_no_context_takeover" | "client_no_context_takeover" => {
                let flag = if key.starts_with("server") {
                    &mut p.server_no_context_takeover
                } else {
                    &mut p.client_no_context_takeover
                };
                if value.is_some() {
                    return Err(bad_value);
                }
                if std::mem::replace(flag, true) {
                    return Err(duplicate);
                }
            }
            "server_max_window_bits" => {
                let bits = window_bits(&key, &value.ok_or(bad_value)?)?;
                if p.server_max_window_bits.replace(bits).is_some() {
                    return Err(duplicate);
                }
            }
            "client_max_window_bits" => {
                let bits = value.map(|v| window_bits(&key, &v)).transpose()?;
                if p.client_max_window_bits.replace(bits).is_some() {
                    return Err(duplicate);
                }
            }
            _ => return Err(Invalid::UnknownParameter(key)),
        }
    }
    Ok(p)
}

impl ServerPolicy {
    /// Chooses the first permessage-deflate offer in `values` (the request's
    /// `Sec-WebSocket-Extensions` header values) that this policy can honour, or none.
    pub(crate) fn accept<'a>(&self, values: impl IntoIterator<Item = &'a str>) -> Option<Agreed> {
        let offers = extensions(values).ok()?;
        offers
            .into_iter()
            .filter(|(name, _)| name == NAME)
            .find_map(|(_, list)| self.answer(&params(list).ok()?))
    }

    /// The answer to one valid offer, if this policy can take it.
    fn answer(&self, offer: &Params) -> Option<Agreed> {
        let ours = self.max_window_bits.clamp(MIN_WINDOW_BITS, MAX_WINDOW_BITS);
        // The client may cap the window the server compresses with; we can always go lower.
        let server_max_window_bits = offer.server_max_window_bits.unwrap_or(MAX_WINDOW_BITS).min(ours);
        // We may cap the client's window only when it said it supports the parameter; a client
        // that did not is inflated with the full window rather than refused.
        let client_max_window_bits = match offer.client_max_window_bits {
            Some(offered) => offered.unwrap_or(MAX_WINDOW_BITS).min(ours),
            None => MAX_WINDOW_BITS,
        };
        Some(Agreed {
            server_no_context_takeover: offer.server_no_context_takeover || !self.context_takeover,
            client_no_context_takeover: offer.client_no_context_takeover || !self.context_takeover,
            server_max_window_bits,
            client_max_window_bits,
        })
    }
}

impl Agreed {
    /// The server's `Sec-WebSocket-Extensions` answer.
    pub(crate) fn response_header(&self) -> String {
        let client_bits = (self.client_max_window_bits < MAX_WINDOW_BITS).then_some(self.client_max_window_bits);
        extension_header(
            self.server_no_context_takeover,
            self.client_no_context_takeover,
            self.server_max_window_bits,
            client_bits,
        )
    }
}

/// A permessage-deflate header value: each flag that is set, `server_max_window_bits` below 15,
/// and `client_max_window_bits` when given.
fn extension_header(server_nct: bool, client_nct: bool, server_bits: u8, client_bits: Option<u8>) -> String {
    let mut out = String::from(NAME);
    if server_nct {
        out.push_str("; server_no_context_takeover");
    }
    if client_nct {
        out.push_str("; client_no_context_takeover");
    }
    if server_bits < MAX_WINDOW_BITS {
        let _ = write!(out, "; server_max_window_bits={server_bits}");
    }
    if let Some(bits) = client_bits {
        let _ = write!(out, "; client_max_window_bits={bits}");
    }
    out
}

/// What a client offers: its wishes for the server's side, and what it allows for its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ClientOffer {
    /// Ask the server not to keep its window between messages.
    pub(crate) server_no_context_takeover: bool,
    /// Promise not to keep ours (the server may also ask for it).
    pub(crate) client_no_context_takeover: bool,
    /// The largest window the server may compress with.
    pub(crate) server_max_window_bits: u8,
    /// The largest window we compress with; the server may ask for less.
    pub(crate) client_max_window_bits: u8,
}

impl ClientOffer {
    /// The request's `Sec-WebSocket-Extensions` value. `client_max_window_bits` is always sent,
    /// so that the server may cap our window (RFC 7692 §7.1.2.2).
    pub(crate) fn header(&self) -> String {
        extension_header(
            self.server_no_context_takeover,
            self.client_no_context_takeover,
            self.server_max_window_bits,
            Some(self.client_max_window_bits),
        )
    }

    /// Checks the server's answer (its `Sec-WebSocket-Extensions` values) against this offer:
    /// `None` when it declined, the agreement (seen from the server) when it accepted.
    ///
    /// # Errors
    ///
    /// [`Invalid`] when the answer is malformed, names another extension, or is not one this
    /// offer allowed: the client fails the connection with 1010.
    pub(crate) fn check<'a>(&self, values: impl IntoIterator<Item = &'a str>) -> Result<Option<Agreed>, Invalid> {
        let mut answers = extensions(values)?;
        let Some((name, list)) = answers.pop() else {
            return Ok(None);
        };
        if name != NAME || !answers.is_empty() {
            return Err(Invalid::NotOffered(name));
        }
        let p = params(list)?;
        if self.server_no_context_takeover && !p.server_no_context_takeover {
            return Err(Invalid::NotOffered("context takeover we asked it not to use".into()));
        }
        let server_max_window_bits = p.server_max_window_bits.unwrap_or(MAX_WINDOW_BITS);
        if server_max_window_bits > self.server_max_window_bits {
            return Err(Invalid::NotOffered("server_max_window_bits above ours".into()));
        }
        let client_max_window_bits = match p.client_max_window_bits {
            Some(Some(bits)) => bits.min(self.client_max_window_bits),
            Some(None) => return Err(Invalid::BadValue("client_max_window_bits".into())),
            None => self.client_max_window_bits,
        };
        Ok(Some(Agreed {
            server_no_context_takeover: p.server_no_context_takeover,
            client_no_context_takeover: p.client_no_context_takeover || self.client_no_context_takeover,
            server_max_window_bits,
            client_max_window_bits,
        }))
    }
}

#[cfg(test)]
mod tests;
