//! Request framing, judged from the raw bytes before hyper parses them.
//!
//! Behind a proxy, a request whose length two parties read differently
//! smuggles a second request past the first. hyper resolves `Content-Length`
//! together with `Transfer-Encoding` by dropping the length (so the handler
//! never sees that both were sent), and answers a coding other than
//! `chunked` with an empty 400. So each request head is read here as it
//! arrives, and its verdict queued for the request's handler, which refuses
//! an ambiguous one in the API's own shape: both headers, several or other
//! transfer codings than plain `chunked`, conflicting lengths.
//!
//! The scanner follows the stream head → body → head for bodies framed by
//! `Content-Length`. After a chunked body (whose end only a chunk parser
//! finds) or a refusal it stops; the server then closes the connection after
//! that request's answer, so no later head on it goes unjudged.

use std::collections::VecDeque;

/// The largest request head read: beyond it the head is refused.
pub const MAX_HEAD: usize = 64 * 1024;

/// What the head of one request says about its body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// No body, or one of `Content-Length` bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked` alone.
    Chunked,
    /// Ambiguous or malformed framing: refuse with this reason.
    Refused(&'static str),
}

impl Verdict {
    /// Whether the connection must close after this request's answer.
    pub fn ends_connection(self) -> bool {
        !matches!(self, Verdict::Length(_))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading a request head.
    Head,
    /// Skipping this many body bytes.
    Body(u64),
    /// No longer following the stream (see the module doc).
    Stopped,
}

/// Follows one connection's incoming bytes and judges each request head.
#[derive(Debug)]
pub struct HeadScanner {
    state: State,
    /// Head bytes so far, when a head spans reads.
    partial: Vec<u8>,
    verdicts: VecDeque<Verdict>,
}

impl Default for HeadScanner {
    fn default() -> Self {
        HeadScanner { state: State::Head, partial: Vec::new(), verdicts: VecDeque::new() }
    }
}

impl HeadScanner {
    /// Reads the next bytes of the stream. A refused head that lies whole in
    /// `bytes` is defused in place (see `defuse`) so that hyper passes it
    /// on to be refused in the API's shape.
    pub fn feed(&mut self, bytes: &mut [u8]) {
        let mut at = 0;
        while at < bytes.len() {
            match self.state {
                State::Stopped => return,
                State::Body(left) => {
                    let skipped = left.min((bytes.len() - at) as u64);
                    at += skipped as usize;
                    self.state = if skipped == left { State::Head } else { State::Body(left - skipped) };
                }
                State::Head => match self.read_head(&mut bytes[at..]) {
                    Some(used) => at += used,
                    None => return,
                },
            }
        }
    }

    /// Reads head bytes; how many of them the head took, once it is complete.
    fn read_head(&mut self, bytes: &mut [u8]) -> Option<usize> {
        if self.partial.is_empty() {
            if let Some((end, verdict)) = scan_head(bytes) {
                if let Verdict::Refused(_) = verdict {
                    defuse(&mut bytes[..end]);
                }
                self.decide(verdict);
                return Some(end);
            }
        }
        let before = self.partial.len();
        self.partial.extend_from_slice(bytes);
        match scan_head(&self.partial) {
            Some((end, verdict)) => {
                self.decide(verdict);
                Some(end - before)
            }
            None if self.partial.len() > MAX_HEAD => {
                self.decide(Verdict::Refused("request headers are larger than 64 KiB"));
                None
            }
            None => None,
        }
    }

    fn decide(&mut self, verdict: Verdict) {
        self.partial = Vec::new();
        self.verdicts.push_back(verdict);
        self.state = match verdict {
            Verdict::Length(0) => State::Head,
            Verdict::Length(n) => State::Body(n),
            Verdict::Chunked | Verdict::Refused(_) => State::Stopped,
        };
    }

    /// The verdict on the next request's head, in arrival order.
    pub fn next_verdict(&mut self) -> Option<Verdict> {
        self.verdicts.pop_front()
    }

    /// Whether part of a head has arrived and its end has not.
    pub fn in_head(&self) -> bool {
        self.state == State::Head && !self.partial.is_empty()
    }
}

/// Where the head in `bytes` ends (after its empty line), if it does, and
/// the framing it declares. Lines end in LF with an optional CR, as the
/// parser behind hyper reads them, and empty lines before the request line
/// are skipped as it skips them. One pass over the head: this runs on every
/// request.
fn scan_head(bytes: &[u8]) -> Option<(usize, Verdict)> {
    let start = bytes.iter().position(|b| *b != b'\r' && *b != b'\n')?;
    let mut framing = Framing::default();
    let mut line_start = start;
    let mut request_line = true;
    while let Some(length) = memchr::memchr(b'\n', &bytes[line_start..]) {
        let line_end = line_start + length;
        let line = &bytes[line_start..line_end];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            return Some((line_end + 1, framing.verdict()));
        }
        if !request_line {
            framing.header(line);
        }
        request_line = false;
        line_start = line_end + 1;
    }
    None
}

/// The framing headers of one head, as they are read.
#[derive(Default)]
struct Framing {
    length: Option<u64>,
    codings: u32,
    plain_chunked: bool,
    refused: Option<&'static str>,
}

impl Framing {
    fn header(&mut self, line: &[u8]) {
        let Some(colon) = line.iter().position(|b| *b == b':') else { return };
        let (name, value) = (&line[..colon], &line[colon + 1..]);
        // The length test first: most headers are neither.
        if name.len() == 17 && name.eq_ignore_ascii_case(b"transfer-encoding") {
            self.codings += 1;
            self.plain_chunked = self.codings == 1 && trim(value).eq_ignore_ascii_case(b"chunked");
        } else if name.len() == 14 && name.eq_ignore_ascii_case(b"content-length") {
            match parse_length(trim(value)) {
                None => self.refused = Some("Content-Length is not a number"),
                Some(n) if self.length.is_some_and(|seen| seen != n) => {
                    self.refused = Some("conflicting Content-Length headers");
                }
                Some(n) => self.length = Some(n),
            }
        }
    }

    fn verdict(&self) -> Verdict {
        if let Some(reason) = self.refused {
            return Verdict::Refused(reason);
        }
        match (self.codings, self.length) {
            (0, length) => Verdict::Length(length.unwrap_or(0)),
            (_, Some(_)) => Verdict::Refused("both Content-Length and Transfer-Encoding sent"),
            (1, None) if self.plain_chunked => Verdict::Chunked,
            _ => Verdict::Refused("Transfer-Encoding must be exactly chunked"),
        }
    }
}

/// The name every `Transfer-Encoding` header of a refused head is given:
/// as long, so nothing else in the stream moves.
const DEFUSED: &[u8; 17] = b"x-refused-framing";

/// Renames the `Transfer-Encoding` headers of a refused head, which hyper
/// would otherwise answer itself with an empty 400 (a coding other than
/// chunked) or read past its `Content-Length` (both sent). hyper then hands
/// the request over, and the handler refuses it with the API's 400 and
/// closes the connection.
fn defuse(head: &mut [u8]) {
    let mut line_start = 0;
    while line_start < head.len() {
        let line_end = head[line_start..].iter().position(|b| *b == b'\n').map_or(head.len(), |i| line_start + i);
        let line = &mut head[line_start..line_end];
        if line.len() > DEFUSED.len()
            && line[DEFUSED.len()] == b':'
            && line[..DEFUSED.len()].eq_ignore_ascii_case(b"transfer-encoding")
        {
            line[..DEFUSED.len()].copy_from_slice(DEFUSED);
        }
        line_start = line_end + 1;
    }
}

fn trim(value: &[u8]) -> &[u8] {
    let is_space = |b: &u8| *b == b' ' || *b == b'\t';
    let start = value.iter().position(|b| !is_space(b)).unwrap_or(value.len());
    let end = value.iter().rposition(|b| !is_space(b)).map_or(start, |i| i + 1);
    &value[start..end]
}

fn parse_length(value: &[u8]) -> Option<u64> {
    if value.is_empty() || value.len() > 18 || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(value).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdicts(stream: &[u8], split_at: usize) -> Vec<Verdict> {
        let mut scanner = HeadScanner::default();
        let mut stream = stream.to_vec();
        let split_at = split_at.min(stream.len());
        let (a, b) = stream.split_at_mut(split_at);
        scanner.feed(a);
        scanner.feed(b);
        std::iter::from_fn(|| scanner.next_verdict()).collect()
    }

    #[test]
    fn keep_alive_heads_are_followed_past_their_bodies_however_the_bytes_are_split() {
        let stream = b"POST /a HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello\r\nPOST /b HTTP/1.1\nHost: x\n\nGET /c HTTP/1.1\r\ncontent-length: 0\r\n\r\n";
        for split in 0..stream.len() {
            assert_eq!(
                verdicts(stream, split),
                [Verdict::Length(5), Verdict::Length(0), Verdict::Length(0)],
                "split at {split}"
            );
        }
    }

    #[test]
    fn ambiguous_framing_is_refused() {
        let judge = |headers: &str| verdicts(format!("POST / HTTP/1.1\r\n{headers}\r\n").as_bytes(), 0)[0];
        assert_eq!(judge("Transfer-Encoding: chunked\r\n"), Verdict::Chunked);
        assert_eq!(judge("Transfer-Encoding:  Chunked \r\n"), Verdict::Chunked);
        for bad in [
            "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
            "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n",
            "Transfer-Encoding: gzip, chunked\r\n",
            "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
            "Transfer-Encoding: identity\r\n",
            "Content-Length: 5\r\nContent-Length: 6\r\n",
            "Content-Length: +5\r\n",
        ] {
            assert!(matches!(judge(bad), Verdict::Refused(_)), "{bad:?}");
        }
    }

    #[test]
    fn nothing_after_a_chunked_head_is_judged() {
        let stream =
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\nPOST / HTTP/1.1\r\n\r\n";
        assert_eq!(verdicts(stream, 7), [Verdict::Chunked]);
    }

    #[test]
    fn a_refused_head_has_its_transfer_codings_renamed_and_nothing_else() {
        let mut stream = b"POST / HTTP/1.1\r\nTransfer-Encoding: identity\r\nContent-Length: 2\r\n\r\nhi".to_vec();
        let mut scanner = HeadScanner::default();
        scanner.feed(&mut stream);
        assert!(matches!(scanner.next_verdict(), Some(Verdict::Refused(_))));
        assert_eq!(stream, b"POST / HTTP/1.1\r\nx-refused-framing: identity\r\nContent-Length: 2\r\n\r\nhi");
        let mut fine = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        HeadScanner::default().feed(&mut fine);
        assert!(fine.starts_with(b"POST / HTTP/1.1\r\nTransfer-Encoding"));
    }

    #[test]
    fn a_head_in_progress_is_known() {
        let mut scanner = HeadScanner::default();
        scanner.feed(&mut b"POST / HTTP/1.1\r\nHost: x\r\n".to_vec());
        assert!(scanner.in_head());
        scanner.feed(&mut b"\r\n".to_vec());
        assert!(!scanner.in_head());
    }
}
