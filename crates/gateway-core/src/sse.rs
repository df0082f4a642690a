//! Server-sent events: an incremental [`Decoder`] and an [`encode`] function.
//!
//! The decoder follows the WHATWG event-stream rules: LF, CRLF and CR line ends (a CRLF split
//! across two chunks is one line end), multi-line `data`, comments, `event` / `id` / `retry`, and
//! a leading byte-order mark. It works on bytes and only decodes complete lines, so a UTF-8 code
//! point split across chunks is reassembled, never dropped. One event is capped in size: an
//! upstream that never ends a line cannot grow memory without bound.

use std::fmt;

/// Default cap on one event (its data plus the line being read): 1 MiB.
pub const DEFAULT_MAX_EVENT_BYTES: usize = 1 << 20;

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// One dispatched event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Event {
    /// The `event:` field, when present.
    pub event: Option<String>,
    /// The `data:` lines joined with `\n`.
    pub data: String,
    /// The `id:` field, when present.
    pub id: Option<String>,
    /// The `retry:` field in milliseconds, when present and valid.
    pub retry: Option<u64>,
}

impl Event {
    /// An event with only a `data` field.
    pub fn data(data: impl Into<String>) -> Self {
        Self {
            data: data.into(),
            ..Self::default()
        }
    }

    /// Whether this is the OpenAI end-of-stream marker `data: [DONE]`.
    pub fn is_done(&self) -> bool {
        self.data.trim() == "[DONE]"
    }
}

/// Why the decoder could not produce an event. Every error is final for its stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SseError {
    /// One event (or one unterminated line) grew beyond the configured cap.
    EventTooLarge {
        /// The configured cap in bytes.
        limit: usize,
    },
    /// A line was not valid UTF-8.
    InvalidUtf8,
}

impl fmt::Display for SseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::EventTooLarge { limit } => {
                write!(f, "server-sent event larger than {limit} bytes")
            }
            Self::InvalidUtf8 => f.write_str("server-sent event is not valid utf-8"),
        }
    }
}

impl std::error::Error for SseError {}

/// An incremental event-stream decoder: [`feed`](Decoder::feed) bytes as they arrive, then
/// call [`next_event`](Decoder::next_event) until it returns `Ok(None)`; at end of input call
/// [`finish`](Decoder::finish).
#[derive(Debug)]
pub struct Decoder {
    buf: Vec<u8>,
    /// Input bytes already dropped from the front of `buf`.
    dropped: u64,
    /// Start of the unread part of `buf`.
    pos: usize,
    /// Where the search for the next line end resumes (avoids rescanning a long line).
    scan: usize,
    max_event: usize,
    /// The previous chunk ended in CR: a leading LF of the next one belongs to it.
    skip_lf: bool,
    bom_checked: bool,
    pending: Pending,
    failed: Option<SseError>,
}

#[derive(Debug, Default)]
struct Pending {
    event: Option<String>,
    data: String,
    has_data: bool,
    id: Option<String>,
    retry: Option<u64>,
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_EVENT_BYTES)
    }
}

impl Decoder {
    /// A decoder that rejects events larger than `max_event_bytes`.
    pub fn new(max_event_bytes: usize) -> Self {
        Self {
            buf: Vec::new(),
            dropped: 0,
            pos: 0,
            scan: 0,
            max_event: max_event_bytes,
            skip_lf: false,
            bom_checked: false,
            pending: Pending::default(),
            failed: None,
        }
    }

    /// Append received bytes.
    pub fn feed(&mut self, chunk: &[u8]) {
        if self.failed.is_some() {
            return;
        }
        if self.pos > 0 && self.pos == self.buf.len() {
            self.dropped += self.pos as u64;
            self.buf.clear();
            self.scan -= self.pos;
            self.pos = 0;
        } else if self.pos > 4096 && self.pos * 2 > self.buf.len() {
            self.buf.drain(..self.pos);
            self.dropped += self.pos as u64;
            self.scan -= self.pos;
            self.pos = 0;
        }
        self.buf.extend_from_slice(chunk);
    }

    /// How many input bytes have been consumed: right after [`next_event`](Decoder::next_event)
    /// returned an event, the offset just past the blank line that dispatched it. A relay that
    /// keeps the raw input can forward each event's original bytes (comments and all) verbatim.
    pub fn position(&self) -> u64 {
        // The LF of a CRLF that dispatched the event belongs to it when it has arrived.
        let lf = self.skip_lf && self.buf.get(self.pos) == Some(&b'\n');
        self.dropped + self.pos as u64 + u64::from(lf)
    }

    /// The next complete event, `Ok(None)` when more input is needed.
    pub fn next_event(&mut self) -> Result<Option<Event>, SseError> {
        if let Some(err) = &self.failed {
            return Err(err.clone());
        }
        if !self.check_bom(false) {
            return Ok(None);
        }
        loop {
            if self.skip_lf && self.pos < self.buf.len() {
                if self.buf[self.pos] == b'\n' {
                    self.pos += 1;
                    self.scan = self.scan.max(self.pos);
                }
                self.skip_lf = false;
            }
            let rest = &self.buf[self.scan..];
            let Some(offset) = memchr::memchr2(b'\n', b'\r', rest) else {
                self.scan = self.buf.len();
                let open = self.buf.len() - self.pos + self.pending.data.len();
                if open > self.max_event {
                    return Err(self.fail(SseError::EventTooLarge {
                        limit: self.max_event,
                    }));
                }
                return Ok(None);
            };
            let end = self.scan + offset;
            let cr = self.buf[end] == b'\r';
            let line_start = self.pos;
            self.pos = end + 1;
            self.scan = self.pos;
            self.skip_lf = cr;
            if let Some(event) = self.process_line(line_start, end)? {
                return Ok(Some(event));
            }
        }
    }

    /// Signal end of input: returns the last event if the stream ended without its blank line.
    /// An unterminated final line counts as a line, so no data is lost.
    pub fn finish(&mut self) -> Result<Option<Event>, SseError> {
        if let Some(event) = self.next_event()? {
            return Ok(Some(event));
        }
        self.check_bom(true);
        if self.pos < self.buf.len() {
            let (start, end) = (self.pos, self.buf.len());
            self.pos = end;
            self.scan = end;
            if let Some(event) = self.process_line(start, end)? {
                return Ok(Some(event));
            }
        }
        Ok(self.dispatch())
    }

    /// Returns false while the first bytes could still be a split byte-order mark.
    fn check_bom(&mut self, at_eof: bool) -> bool {
        if self.bom_checked {
            return true;
        }
        let head = &self.buf[self.pos..];
        if head.len() < BOM.len() && BOM.starts_with(head) && !at_eof {
            return false;
        }
        if head.starts_with(BOM) {
            self.pos += BOM.len();
            self.scan = self.scan.max(self.pos);
        }
        self.bom_checked = true;
        true
    }

    fn fail(&mut self, err: SseError) -> SseError {
        self.failed = Some(err.clone());
        self.buf = Vec::new();
        self.pos = 0;
        self.scan = 0;
        err
    }

    fn process_line(&mut self, start: usize, end: usize) -> Result<Option<Event>, SseError> {
        if start == end {
            return Ok(self.dispatch());
        }
        let Ok(line) = std::str::from_utf8(&self.buf[start..end]) else {
            return Err(self.fail(SseError::InvalidUtf8));
        };
        if line.starts_with(':') {
            return Ok(None);
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        let pending = &mut self.pending;
        match field {
            "data" => {
                if pending.data.len() + value.len() + 1 > self.max_event {
                    return Err(self.fail(SseError::EventTooLarge {
                        limit: self.max_event,
                    }));
                }
                if pending.has_data {
                    pending.data.push('\n');
                }
                pending.data.push_str(value);
                pending.has_data = true;
            }
            "event" => pending.event = Some(value.to_owned()),
            "id" if !value.contains('\0') => pending.id = Some(value.to_owned()),
            "retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                pending.retry = value.parse().ok();
            }
            _ => {}
        }
        Ok(None)
    }

    fn dispatch(&mut self) -> Option<Event> {
        let pending = std::mem::take(&mut self.pending);
        pending.has_data.then_some(Event {
            event: pending.event,
            data: pending.data,
            id: pending.id,
            retry: pending.retry,
        })
    }
}

/// Append the wire form of `event` to `out`: each field on its own line, data split on line
/// ends, and the blank line that dispatches it.
pub fn encode(event: &Event, out: &mut Vec<u8>) {
    if let Some(name) = &event.event {
        field(out, "event", name);
    }
    if let Some(id) = &event.id {
        field(out, "id", id);
    }
    if let Some(retry) = event.retry {
        field(out, "retry", &retry.to_string());
    }
    let mut rest = event.data.as_str();
    loop {
        let Some(at) = rest.find(['\r', '\n']) else {
            field(out, "data", rest);
            break;
        };
        field(out, "data", &rest[..at]);
        let skip = if rest[at..].starts_with("\r\n") { 2 } else { 1 };
        rest = &rest[at + skip..];
    }
    out.push(b'\n');
}

/// Append `data: <json>\n\n` for a payload known to contain no line ends (serialized JSON).
pub fn encode_data_line(json: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(json);
    out.extend_from_slice(b"\n\n");
}

/// Append the terminal in-band error event: `data: {"error": {...}}` in the OpenAI envelope.
/// The stream must end right after it, without `[DONE]`.
pub fn encode_error(error: &crate::GatewayError, out: &mut Vec<u8>) {
    match serde_json::to_vec(&error.to_envelope()) {
        Ok(json) => encode_data_line(&json, out),
        // Serializing plain strings cannot fail; keep a valid event if it ever does.
        Err(_) => encode_data_line(br#"{"error":{"message":"internal error","type":"server_error","param":null,"code":null}}"#, out),
    }
}

/// The OpenAI end-of-stream marker, ready to send.
pub const DONE: &[u8] = b"data: [DONE]\n\n";

fn field(out: &mut Vec<u8>, name: &str, value: &str) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value.as_bytes());
    out.push(b'\n');
}

#[cfg(test)]
mod tests;
