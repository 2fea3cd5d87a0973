//! Splitting an agent's output into bounded lines, for both runners.
//!
//! Everything an agent prints is hostile, its line lengths included: one
//! line of several gigabytes must not grow the worker. [`BoundedLines`]
//! turns a stream of byte chunks (a pipe's reads for the process runner,
//! the daemon's log frames for the Docker runner) into lines of at most
//! `max` bytes. A longer line is **cut**: its first `max` bytes are kept
//! (then ` …[line cut: longer than N bytes]`), the rest is read and dropped
//! until its end. Memory held is `max` plus one chunk, whatever the agent
//! prints. Invalid UTF-8 and NUL bytes are replaced; trailing whitespace is
//! trimmed.
//!
//! [`forward`] drives it over an [`AsyncRead`] and sends each line on the
//! runner's channel.

use tokio::io::{AsyncRead, AsyncReadExt as _};
use tokio::sync::mpsc;

use super::{OutputLine, Stream};

/// The longest line kept by default: 1 MiB (`--max-line-bytes`).
pub const DEFAULT_MAX_LINE_BYTES: usize = 1024 * 1024;

/// How much of a pipe is read at once.
const READ_CHUNK: usize = 64 * 1024;

/// Splits byte chunks into lines of at most `max` bytes.
#[derive(Debug)]
pub struct BoundedLines {
    max: usize,
    pending: Vec<u8>,
    /// Inside a line already cut: drop bytes until the next newline.
    discarding: bool,
}

impl BoundedLines {
    pub fn new(max: usize) -> Self {
        Self {
            max: max.max(1),
            pending: Vec::new(),
            discarding: false,
        }
    }

    /// The note that ends a cut line.
    pub fn cut_mark(max: usize) -> String {
        format!(" …[line cut: longer than {max} bytes]")
    }

    /// Feeds `bytes`; returns the lines they complete.
    pub fn push(&mut self, mut bytes: &[u8]) -> Vec<String> {
        let mut lines = Vec::new();
        while !bytes.is_empty() {
            let newline = memchr::memchr(b'\n', bytes);
            let (part, rest, ends) = match newline {
                Some(at) => (&bytes[..at], &bytes[at + 1..], true),
                None => (bytes, &[][..], false),
            };
            bytes = rest;
            if self.discarding {
                if ends {
                    self.discarding = false;
                }
                continue;
            }
            let room = self.max - self.pending.len();
            if part.len() > room {
                self.pending.extend_from_slice(&part[..room]);
                let mut line = text(&self.pending, self.max);
                line.push_str(&Self::cut_mark(self.max));
                lines.push(line);
                self.pending.clear();
                self.discarding = !ends;
                continue;
            }
            self.pending.extend_from_slice(part);
            if ends {
                lines.push(text(&self.pending, self.max));
                self.pending.clear();
            }
        }
        lines
    }

    /// The last line when the stream ended without a newline.
    pub fn finish(self) -> Option<String> {
        (!self.pending.is_empty()).then(|| text(&self.pending, self.max))
    }
}

/// A line as text of at most `max` bytes: invalid UTF-8 and NUL (which
/// PostgreSQL's `TEXT` refuses) become U+FFFD (three bytes each, so the
/// text is cut again at a character boundary).
fn text(bytes: &[u8], max: usize) -> String {
    let mut text = String::from_utf8_lossy(bytes)
        .trim_end()
        .replace('\0', "\u{FFFD}");
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

/// Sends each line of `pipe` (at most `max` bytes, see [`BoundedLines`]) to
/// `lines` as `stream`; returns at the pipe's end or when nobody listens.
pub async fn forward(
    pipe: Option<impl AsyncRead + Unpin>,
    stream: Stream,
    max: usize,
    lines: mpsc::Sender<OutputLine>,
) {
    let Some(mut pipe) = pipe else { return };
    let mut splitter = BoundedLines::new(max);
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                for text in splitter.push(&buf[..n]) {
                    if lines.send(OutputLine { stream, text }).await.is_err() {
                        return;
                    }
                }
            }
        }
    }
    if let Some(text) = splitter.finish() {
        let _ = lines.send(OutputLine { stream, text }).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_reassembled_across_chunks() {
        let mut b = BoundedLines::new(1024);
        assert!(b.push(b"{\"type\":").is_empty());
        assert_eq!(
            b.push(b"\"x\"}\nsecond\r\nthi"),
            ["{\"type\":\"x\"}", "second"]
        );
        assert_eq!(b.push(b"rd\n"), ["third"]);
        assert_eq!(b.push(b"tail"), Vec::<String>::new());
        assert_eq!(b.finish().as_deref(), Some("tail"));
    }

    #[test]
    fn a_long_line_is_cut_and_the_rest_dropped() {
        let mut b = BoundedLines::new(8);
        let mark = BoundedLines::cut_mark(8);
        // Exactly the limit is kept whole.
        assert_eq!(b.push(b"12345678\n"), ["12345678"]);
        // Longer, over several chunks: cut once, the rest dropped, the next
        // line intact.
        assert_eq!(b.push(b"abcde"), Vec::<String>::new());
        assert_eq!(b.push(b"fghij"), [format!("abcdefgh{mark}")]);
        assert!(b.push(&[b'x'; 10_000]).is_empty());
        assert_eq!(b.push(b"yyy\nnext\n"), ["next"]);
        // Cut in the chunk that ends it: nothing dropped from the next one.
        assert_eq!(
            b.push(b"0123456789\nok\n"),
            [format!("01234567{mark}"), "ok".to_owned()]
        );
        assert!(b.pending.capacity() <= 16, "{}", b.pending.capacity());
        assert!(b.finish().is_none());
    }

    #[tokio::test]
    async fn forward_holds_no_more_than_the_limit() {
        // 8 MiB without a newline, then a line: one cut line, then the line.
        let (mut w, r) = tokio::io::duplex(64 * 1024);
        tokio::spawn(async move {
            use tokio::io::AsyncWriteExt as _;
            let chunk = vec![b'a'; 64 * 1024];
            for _ in 0..128 {
                w.write_all(&chunk).await.unwrap();
            }
            w.write_all(b"\nend").await.unwrap();
        });
        let (tx, mut rx) = mpsc::channel(4);
        tokio::spawn(forward(Some(r), Stream::Stdout, 1000, tx));
        let first = rx.recv().await.unwrap();
        assert_eq!(first.text.len(), 1000 + BoundedLines::cut_mark(1000).len());
        assert_eq!(rx.recv().await.unwrap().text, "end");
        assert!(rx.recv().await.is_none());
    }
}
