//! Where one HTTP/1.1 request ends and the next begins, in the bytes a connection hands to
//! hyper. hyper reads ahead: a client that pipelines a complete request and the first bytes of
//! the next one gets both into hyper's buffer in one read, and once the first is answered
//! nothing more arrives on the socket, so the connection looks idle while a partial head waits.
//! [`Framer`] follows the message boundaries (a head ends at its empty line; a body is
//! `Content-Length` bytes) so that the connection loop can start the head clock for that
//! partial head as soon as the previous request is answered, instead of waiting out the idle
//! timeout. A message it cannot frame (a chunked body, a head past 64 KiB) ends the following:
//! that connection falls back to the clock started by the next byte read.

/// A head longer than this is not followed (hyper refuses far smaller ones anyway).
const MAX_HEAD: usize = 64 * 1024;

#[derive(Debug)]
pub(crate) struct Framer {
    mode: Mode,
}

#[derive(Debug)]
enum Mode {
    /// Inside a head: the bytes so far (leading empty lines dropped).
    Head(Vec<u8>),
    /// Inside a body: the bytes still to come.
    Body(u64),
    /// Boundaries are no longer known.
    Unframed,
}

impl Framer {
    pub(crate) fn new() -> Framer {
        Framer {
            mode: Mode::Head(Vec::new()),
        }
    }

    /// Whether some bytes of a request head that is not complete yet have been delivered.
    pub(crate) fn head_started(&self) -> bool {
        matches!(&self.mode, Mode::Head(head) if !head.is_empty())
    }

    /// Account for `bytes`, delivered after everything fed before.
    pub(crate) fn feed(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            match &mut self.mode {
                Mode::Unframed => return,
                Mode::Body(left) => {
                    let n = (*left).min(bytes.len() as u64);
                    *left -= n;
                    bytes = &bytes[n as usize..];
                    if *left == 0 {
                        self.mode = Mode::Head(Vec::new());
                    }
                }
                Mode::Head(head) => {
                    if head.is_empty() {
                        // RFC 9112 §2.2: empty lines before a request line are ignored.
                        let skip = bytes
                            .iter()
                            .take_while(|b| matches!(b, b'\r' | b'\n'))
                            .count();
                        bytes = &bytes[skip..];
                        if bytes.is_empty() {
                            return;
                        }
                    }
                    // Look for the empty line from a little before the new bytes, in case it
                    // straddles two reads.
                    let from = head.len().saturating_sub(2);
                    head.extend_from_slice(bytes);
                    bytes = &[];
                    let Some(end) = head_end(&head[from..]).map(|e| from + e) else {
                        if head.len() > MAX_HEAD {
                            self.mode = Mode::Unframed;
                        }
                        return;
                    };
                    let rest = head.split_off(end);
                    self.mode = match body_length(head) {
                        Some(0) => Mode::Head(Vec::new()),
                        Some(n) => Mode::Body(n),
                        None => Mode::Unframed,
                    };
                    self.feed(&rest);
                }
            }
        }
    }
}

/// The index just past the empty line that ends a head: `\n` then `\n` or `\r\n`.
fn head_end(bytes: &[u8]) -> Option<usize> {
    (0..bytes.len()).find_map(|i| {
        if bytes[i] != b'\n' {
            return None;
        }
        match bytes.get(i + 1..) {
            Some([b'\n', ..]) => Some(i + 2),
            Some([b'\r', b'\n', ..]) => Some(i + 3),
            _ => None,
        }
    })
}

/// The body length a request head declares: its `Content-Length` (0 without one); `None` when
/// it cannot be known (`Transfer-Encoding`, or a malformed or repeated length).
fn body_length(head: &[u8]) -> Option<u64> {
    let mut length = None;
    for line in head.split(|b| *b == b'\n').skip(1) {
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        let name = &line[..colon];
        let value = std::str::from_utf8(&line[colon + 1..]).ok()?.trim();
        if name.eq_ignore_ascii_case(b"transfer-encoding") {
            return None;
        }
        if name.eq_ignore_ascii_case(b"content-length") {
            if length.is_some() {
                return None;
            }
            length = Some(value.parse::<u64>().ok()?);
        }
    }
    Some(length.unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fed(parts: &[&str]) -> Framer {
        let mut f = Framer::new();
        for p in parts {
            f.feed(p.as_bytes());
        }
        f
    }

    #[test]
    fn a_partial_head_behind_complete_requests_is_seen() {
        let get = "GET /a HTTP/1.1\r\nHost: x\r\n\r\n";
        assert!(!fed(&[get]).head_started());
        assert!(fed(&[&format!("{get}GET /b HT")]).head_started());
        assert!(fed(&[get, get, "GET"]).head_started());
        // Bodies are skipped by their length, whatever they contain.
        let post = "POST /t HTTP/1.1\r\ncontent-length: 8\r\n\r\n\r\n\r\nGET ";
        assert!(!fed(&[post]).head_started());
        assert!(fed(&[post, "/x"]).head_started());
        assert!(fed(&[&format!("{post}/x")]).head_started());
        // An empty line split across reads, and bare line feeds.
        assert!(!fed(&["GET / HTTP/1.1\r\nHost: x\r", "\n\r", "\n"]).head_started());
        assert!(!fed(&["GET / HTTP/1.1\nHost: x\n\n"]).head_started());
        assert!(fed(&["GET / HTTP/1.1\nHost: x\n\nG"]).head_started());
        // Empty lines between requests are no head.
        assert!(!fed(&[get, "\r\n\r\n"]).head_started());
    }

    #[test]
    fn what_cannot_be_framed_is_not_followed() {
        let chunked =
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\nGET";
        assert!(!fed(&[chunked]).head_started());
        let twice = "POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\naGET";
        assert!(!fed(&[twice]).head_started());
        let huge = "X".repeat(MAX_HEAD + 1);
        assert!(!fed(&["GET / HTTP/1.1\r\n", &huge]).head_started());
    }
}
