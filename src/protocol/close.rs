//! Close codes and close-frame payloads (RFC 6455 §5.5.1, §7.4).

use std::fmt;

use bytes::{BufMut, Bytes, BytesMut};

use super::ProtocolError;

/// The longest close reason that fits a control frame: 125 payload bytes less the 2-byte code.
pub const MAX_CLOSE_REASON: usize = 123;

/// A WebSocket close status code.
///
/// The named constants cover the codes RFC 6455 and IANA define; any other `u16` can be built with
/// `CloseCode(n)`, for example an application code in 4000–4999.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CloseCode(pub u16);

impl CloseCode {
    /// 1000: the purpose of the connection was fulfilled.
    pub const NORMAL: CloseCode = CloseCode(1000);
    /// 1001: the endpoint is going away (server shutdown, page navigation).
    pub const AWAY: CloseCode = CloseCode(1001);
    /// 1002: the peer broke the protocol.
    pub const PROTOCOL: CloseCode = CloseCode(1002);
    /// 1003: the peer sent a kind of data this endpoint does not accept.
    pub const UNSUPPORTED: CloseCode = CloseCode(1003);
    /// 1005: reserved; reported locally when a close frame carried no code. Never sent.
    pub const NO_STATUS: CloseCode = CloseCode(1005);
    /// 1006: reserved; reported locally when the connection ended without a close frame. Never sent.
    pub const ABNORMAL: CloseCode = CloseCode(1006);
    /// 1007: a text message was not valid UTF-8, or data did not match its type.
    pub const INVALID_DATA: CloseCode = CloseCode(1007);
    /// 1008: a policy was violated (for example the outbound queue limit).
    pub const POLICY: CloseCode = CloseCode(1008);
    /// 1009: a frame or message was larger than this endpoint accepts.
    pub const TOO_BIG: CloseCode = CloseCode(1009);
    /// 1010: the client expected an extension the server did not negotiate.
    pub const EXTENSION: CloseCode = CloseCode(1010);
    /// 1011: the server met an unexpected condition (for example a panicking handler).
    pub const INTERNAL: CloseCode = CloseCode(1011);
    /// 1012: the service is restarting.
    pub const RESTART: CloseCode = CloseCode(1012);
    /// 1013: try again later (temporary overload).
    pub const AGAIN: CloseCode = CloseCode(1013);

    /// Whether a peer may put this code in a close frame it sends.
    ///
    /// 1005, 1006 and 1015 are reserved for local reporting; 1004 and 1016–2999 are reserved or
    /// unassigned; codes below 1000 are not used.
    pub fn is_valid_on_wire(self) -> bool {
        matches!(self.0, 1000..=1003 | 1007..=1014 | 3000..=4999)
    }
}

impl fmt::Debug for CloseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CloseCode({})", self.0)
    }
}

impl fmt::Display for CloseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self.0 {
            1000 => "normal",
            1001 => "going away",
            1002 => "protocol error",
            1003 => "unsupported data",
            1005 => "no status",
            1006 => "abnormal closure",
            1007 => "invalid data",
            1008 => "policy violation",
            1009 => "message too big",
            1010 => "missing extension",
            1011 => "internal error",
            1012 => "restarting",
            1013 => "try again later",
            _ => return write!(f, "{}", self.0),
        };
        write!(f, "{} ({name})", self.0)
    }
}

impl From<u16> for CloseCode {
    fn from(code: u16) -> Self {
        CloseCode(code)
    }
}

/// The code and reason a close frame carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CloseFrame {
    /// The status code.
    pub code: CloseCode,
    /// A human-readable reason, at most [`MAX_CLOSE_REASON`] bytes of UTF-8 (may be empty).
    pub reason: String,
}

impl CloseFrame {
    /// A close frame with `code` and `reason`, the reason cut at a character boundary to fit.
    pub fn new(code: CloseCode, reason: impl Into<String>) -> Self {
        let mut reason = reason.into();
        if reason.len() > MAX_CLOSE_REASON {
            let mut cut = MAX_CLOSE_REASON;
            while !reason.is_char_boundary(cut) {
                cut -= 1;
            }
            reason.truncate(cut);
        }
        CloseFrame { code, reason }
    }

    /// Parses a close frame's payload. An empty payload means "no status" (`Ok(None)`).
    ///
    /// # Errors
    ///
    /// A 1-byte payload or a code not allowed on the wire is [`ProtocolError::InvalidCloseCode`]
    /// (close with 1002); a reason that is not UTF-8 is [`ProtocolError::InvalidUtf8`] (1007).
    pub fn parse(payload: &[u8]) -> Result<Option<CloseFrame>, ProtocolError> {
        match payload {
            [] => Ok(None),
            [_] => Err(ProtocolError::InvalidCloseCode(None)),
            [hi, lo, reason @ ..] => {
                let code = CloseCode(u16::from_be_bytes([*hi, *lo]));
                if !code.is_valid_on_wire() {
                    return Err(ProtocolError::InvalidCloseCode(Some(code.0)));
                }
                let reason = std::str::from_utf8(reason).map_err(|_| ProtocolError::InvalidUtf8)?;
                Ok(Some(CloseFrame {
                    code,
                    reason: reason.to_owned(),
                }))
            }
        }
    }

    /// The payload bytes of this close frame: the code, big-endian, then the reason.
    pub fn to_payload(&self) -> Bytes {
        let mut buf = BytesMut::with_capacity(2 + self.reason.len());
        buf.put_u16(self.code.0);
        buf.put_slice(self.reason.as_bytes());
        buf.freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_code_and_reason() {
        let frame = CloseFrame::parse(&[0x03, 0xE8, b'b', b'y', b'e']).unwrap().unwrap();
        assert_eq!(frame, CloseFrame::new(CloseCode::NORMAL, "bye"));
        assert_eq!(CloseFrame::parse(&frame.to_payload()).unwrap(), Some(frame));
    }

    #[test]
    fn empty_payload_is_no_status() {
        assert_eq!(CloseFrame::parse(&[]).unwrap(), None);
    }

    #[test]
    fn rejects_one_byte_and_reserved_codes() {
        assert_eq!(CloseFrame::parse(&[0x03]), Err(ProtocolError::InvalidCloseCode(None)));
        for code in [0u16, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000] {
            let err = CloseFrame::parse(&code.to_be_bytes()).unwrap_err();
            assert_eq!(err, ProtocolError::InvalidCloseCode(Some(code)), "code {code}");
        }
        for code in [
            1000u16, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999,
        ] {
            assert!(CloseFrame::parse(&code.to_be_bytes()).is_ok(), "code {code}");
        }
    }

    #[test]
    fn close_code_errors_print_the_code_as_a_number() {
        assert_eq!(
            ProtocolError::InvalidCloseCode(Some(1004)).to_string(),
            "invalid close code 1004"
        );
        assert!(ProtocolError::InvalidCloseCode(None).to_string().contains("1 byte"));
    }

    #[test]
    fn rejects_reason_that_is_not_utf8() {
        assert_eq!(CloseFrame::parse(&[0x03, 0xE8, 0xFF]), Err(ProtocolError::InvalidUtf8));
    }

    #[test]
    fn long_reason_is_cut_at_a_char_boundary() {
        let frame = CloseFrame::new(CloseCode::NORMAL, "é".repeat(100));
        assert!(frame.reason.len() <= MAX_CLOSE_REASON);
        assert_eq!(frame.reason.len() % 2, 0);
    }
}
