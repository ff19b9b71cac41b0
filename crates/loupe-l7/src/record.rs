//! What the protocol engine produces: one record per request and its response.

use serde::Serialize;

/// A record's text: inline up to 24 bytes (methods, commands, hosts, most routes and
/// keys), so most records allocate nothing for their labels.
pub type Text = compact_str::CompactString;

/// Bytes as text if they are UTF-8. Headers, keys and names are nearly always ASCII,
/// which needs no decoding.
pub(crate) fn as_text(bytes: &[u8]) -> Option<&str> {
    if bytes.is_ascii() {
        // SAFETY: ASCII is valid UTF-8.
        Some(unsafe { std::str::from_utf8_unchecked(bytes) })
    } else {
        std::str::from_utf8(bytes).ok()
    }
}

/// Which way bytes flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Dir {
    /// Client to server.
    Request,
    /// Server to client.
    Response,
}

/// One request and its response, as seen on the wire. The JSON form is part of the
/// CLI's stable contract.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Record {
    /// `http1`, …
    pub protocol: &'static str,
    /// The method, command or operation (`GET`; empty when the request was not seen).
    pub method: Text,
    /// The raw target (`/orders/42?x=1`).
    pub resource: Text,
    /// The normalised route (`/orders/{id}`): bounded, fit for a label.
    pub route: Text,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<Text>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Why this counts as an error (`5xx`, `4xx`, …), if it does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<Text>,
    /// Bytes on the wire, headers included.
    pub request_bytes: u64,
    pub response_bytes: u64,
    /// Capture times (µs): the request's first and last byte, the response's.
    pub request_start: i64,
    pub request_end: i64,
    pub response_start: i64,
    pub response_end: i64,
    /// The request was not seen (the capture started mid-connection, or data was lost).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub partial: bool,
}

impl Record {
    /// Request sent (first → last byte out).
    pub fn sending_us(&self) -> i64 {
        self.request_end - self.request_start
    }
    /// Server processing: the request's last byte to the response's first.
    pub fn server_us(&self) -> i64 {
        self.response_start - self.request_end
    }
    /// Response received (first → last byte in).
    pub fn receiving_us(&self) -> i64 {
        self.response_end - self.response_start
    }
    /// The request's first byte to the response's last.
    pub fn duration_us(&self) -> i64 {
        self.response_end - self.request_start
    }
}

#[cfg(test)]
mod tests {
    use super::as_text;

    #[test]
    fn bytes_are_text_when_ascii_or_utf8() {
        assert_eq!(as_text(b"shop.example"), Some("shop.example"));
        assert_eq!(as_text("bücher.example".as_bytes()), Some("bücher.example"));
        assert_eq!(as_text(b"\xff\xfe"), None);
    }
}
