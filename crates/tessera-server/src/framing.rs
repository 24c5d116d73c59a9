//! Where one HTTP/1.1 request ends and the next begins, in the bytes a connection hands to
//! hyper. hyper reads ahead: a client that pipelines a complete request and the first bytes of
//! the next one gets both into hyper's buffer in one read, and once the first is answered
//! nothing more arrives on the socket, so the connection looks idle while a partial head waits.
//! [`Framer`] follows the message boundaries (a head ends at its empty line; a body is
//! `Content-Length` bytes) so that the connection loop can start the head clock for that
//! partial head as soon as the previous request is answered, instead of waiting out the idle
//! timeout. Chunked bodies are followed chunk by chunk. A message it cannot frame (a malformed
//! length, a head longer than hyper accepts) ends the following: that connection falls back to
//! the clock started by the next byte read, and hyper refuses such a message anyway.

/// A head longer than this is not followed (hyper refuses heads past about 400 KiB).
const MAX_HEAD: usize = 512 * 1024;
/// A chunk-size or trailer line longer than this is not followed.
const MAX_CHUNK_LINE: usize = 4096;

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
    /// Inside a chunked body (RFC 9112 §7.1).
    Chunked(Chunk),
    /// Boundaries are no longer known.
    Unframed,
}

/// Where a chunked body is.
#[derive(Debug)]
enum Chunk {
    /// A chunk-size line, read so far.
    Size(Vec<u8>),
    /// A chunk's data: the bytes still to come.
    Data(u64),
    /// The line ending after a chunk's data: CRLF (2 left), LF after a CR (1 left), or a bare LF.
    DataEnd(u8),
    /// The trailer section after the last chunk: the current line so far; an empty line ends
    /// the body.
    Trailer(Vec<u8>),
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
                Mode::Chunked(chunk) => {
                    let (used, end) = chunk.feed(bytes);
                    bytes = &bytes[used..];
                    match end {
                        Some(ChunkEnd::Body) => self.mode = Mode::Head(Vec::new()),
                        Some(ChunkEnd::Malformed) => self.mode = Mode::Unframed,
                        None => {}
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
                    // A head that arrives in one read is read where it lies; only one split
                    // across reads is gathered (the empty line may straddle them).
                    let old = head.len();
                    let found = if old == 0 {
                        head_end(bytes).map(|end| (end, body_length(&bytes[..end])))
                    } else {
                        let from = old.saturating_sub(2);
                        head.extend_from_slice(bytes);
                        head_end(&head[from..]).map(|e| {
                            (
                                (from + e).saturating_sub(old),
                                body_length(&head[..from + e]),
                            )
                        })
                    };
                    let Some((end, length)) = found else {
                        if old == 0 {
                            head.extend_from_slice(bytes);
                        }
                        if head.len() > MAX_HEAD {
                            self.mode = Mode::Unframed;
                        }
                        return;
                    };
                    // `end` is where the head ends in `bytes`: what follows is the body.
                    bytes = &bytes[end..];
                    self.mode = match length {
                        Some(Length::Bytes(0)) => Mode::Head(Vec::new()),
                        Some(Length::Bytes(n)) => Mode::Body(n),
                        Some(Length::Chunked) => Mode::Chunked(Chunk::Size(Vec::new())),
                        None => Mode::Unframed,
                    };
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

enum ChunkEnd {
    /// The chunked body has ended.
    Body,
    /// Not chunked framing: stop following.
    Malformed,
}

impl Chunk {
    /// Consume what of `bytes` belongs to the chunked body: how many bytes, and whether the
    /// body ended (or turned out malformed) there.
    fn feed(&mut self, bytes: &[u8]) -> (usize, Option<ChunkEnd>) {
        let mut used = 0;
        while used < bytes.len() {
            let rest = &bytes[used..];
            let trailer = matches!(self, Chunk::Trailer(_));
            match self {
                Chunk::Size(line) | Chunk::Trailer(line) => {
                    let Some(nl) = rest.iter().position(|b| *b == b'\n') else {
                        line.extend_from_slice(rest);
                        let end = (line.len() > MAX_CHUNK_LINE).then_some(ChunkEnd::Malformed);
                        return (bytes.len(), end);
                    };
                    line.extend_from_slice(&rest[..nl]);
                    used += nl + 1;
                    // The line is complete: taken out, the state starts the next one empty.
                    let line = std::mem::take(line);
                    if trailer {
                        if line.iter().all(|b| *b == b'\r') {
                            return (used, Some(ChunkEnd::Body));
                        }
                        continue;
                    }
                    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
                    let size = std::str::from_utf8(&line[..digits])
                        .ok()
                        .and_then(|h| u64::from_str_radix(h, 16).ok());
                    *self = match size {
                        Some(0) => Chunk::Trailer(Vec::new()),
                        Some(n) => Chunk::Data(n),
                        None => return (used, Some(ChunkEnd::Malformed)),
                    };
                }
                Chunk::Data(left) => {
                    let n = (*left).min(rest.len() as u64);
                    *left -= n;
                    used += n as usize;
                    if *left == 0 {
                        *self = Chunk::DataEnd(2);
                    }
                }
                Chunk::DataEnd(left) => {
                    used += 1;
                    *self = match (rest[0], *left) {
                        (b'\r', 2) => Chunk::DataEnd(1),
                        (b'\n', _) => Chunk::Size(Vec::new()),
                        _ => return (used, Some(ChunkEnd::Malformed)),
                    };
                }
            }
        }
        (used, None)
    }
}

/// How a request's body is framed.
enum Length {
    Bytes(u64),
    Chunked,
}

/// The body framing a request head declares: chunked when its `Transfer-Encoding` ends so,
/// otherwise its `Content-Length` (0 without one); `None` when it cannot be known (another
/// transfer coding, or a malformed or repeated length or coding).
fn body_length(head: &[u8]) -> Option<Length> {
    let mut length: Option<u64> = None;
    // Codings over several lines are one list: the last line's last coding decides.
    let mut chunked = None;
    for line in head.split(|b| *b == b'\n').skip(1) {
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        let name = &line[..colon];
        // Only the framing headers' values are read: any other may hold any bytes.
        let value = || std::str::from_utf8(&line[colon + 1..]).ok().map(str::trim);
        if name.eq_ignore_ascii_case(b"transfer-encoding") {
            let last = value()?.rsplit(',').next().unwrap_or("").trim();
            chunked = Some(last.eq_ignore_ascii_case("chunked"));
        } else if name.eq_ignore_ascii_case(b"content-length") {
            let n = value()?.parse::<u64>().ok()?;
            // Repeated, a length must say the same each time (RFC 9110 §8.6).
            if length.is_some_and(|l| l != n) {
                return None;
            }
            length = Some(n);
        }
    }
    match chunked {
        Some(true) => Some(Length::Chunked),
        Some(false) => None,
        None => Some(Length::Bytes(length.unwrap_or(0))),
    }
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

    /// Found by the attack on the fix: requests hyper accepts made the framer give up.
    #[test]
    fn what_hyper_accepts_is_followed() {
        for head in [
            "POST / HTTP/1.1\r\nX-Name: caf\u{e9}\r\nContent-Length: 1\r\n\r\na",
            "POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\na",
            "POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        ] {
            assert!(!fed(&[head]).head_started(), "{head}");
            assert!(fed(&[head, "GET"]).head_started(), "{head}");
        }
        // Bytes that are not UTF-8 in another header.
        let mut f = Framer::new();
        f.feed(b"GET / HTTP/1.1\r\nX-Junk: \xff\xfe\r\n\r\nGET");
        assert!(f.head_started());
    }

    #[test]
    fn chunked_bodies_are_followed() {
        let head = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
        let body = "5;ext=1\r\nhe\r\n\n\r\n3\r\nabc\r\n0\r\nX-Trailer: 1\r\n\r\n";
        assert!(!fed(&[head, body]).head_started());
        assert!(fed(&[head, body, "GET /x"]).head_started());
        assert!(fed(&[&format!("{head}{body}GET /x")]).head_started());
        // Byte by byte, the same.
        let all = format!("{head}{body}GET /x");
        let mut f = Framer::new();
        for b in all.as_bytes() {
            f.feed(std::slice::from_ref(b));
        }
        assert!(f.head_started());
        // The body's own bytes are never a head.
        assert!(!fed(&[head, "4\r\nGET \r\n"]).head_started());
        assert!(!fed(&[head, "0\r\n\r\n"]).head_started());
        assert!(fed(&[head, "0\r\n\r\nG"]).head_started());
    }

    #[test]
    fn what_cannot_be_framed_is_not_followed() {
        let gzip = "POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\nGET";
        assert!(!fed(&[gzip]).head_started());
        let bad_size = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nGET";
        assert!(!fed(&[bad_size]).head_started());
        let differ = "POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\naGET";
        assert!(!fed(&[differ]).head_started());
        let huge = "X".repeat(MAX_HEAD + 1);
        assert!(!fed(&["GET / HTTP/1.1\r\n", &huge]).head_started());
    }
}
