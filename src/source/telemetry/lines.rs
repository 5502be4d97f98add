//! JSON-lines input from a file or stdin: one item per line, blank lines
//! skipped; a line that is too long or not UTF-8 is an error for that line
//! only, so one bad line never ends the stream.

use std::path::Path;

use anyhow::Context;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, BufReader};

/// Longest line taken (rtl_433 objects are a few hundred bytes).
pub const MAX_LINE_BYTES: usize = 1 << 20;

/// Reads lines one at a time, so the caller can await between them.
pub struct LineReader<R> {
    input: R,
    buffer: Vec<u8>,
    line_no: u64,
}

/// A boxed reader of a file or stdin.
pub type AnyLineReader = LineReader<Box<dyn AsyncBufRead + Unpin + Send>>;

impl<R: AsyncBufRead + Unpin> LineReader<R> {
    pub fn new(input: R) -> Self {
        LineReader {
            input,
            buffer: Vec::with_capacity(1024),
            line_no: 0,
        }
    }

    /// The next non-blank line with its 1-based number, or why that line
    /// cannot be used; `Ok(None)` at the end, `Err` if reading failed.
    pub async fn next_line(&mut self) -> anyhow::Result<Option<(u64, Result<&str, String>)>> {
        loop {
            self.buffer.clear();
            let read = (&mut self.input)
                .take(MAX_LINE_BYTES as u64 + 1)
                .read_until(b'\n', &mut self.buffer)
                .await
                .context("reading input")?;
            if read == 0 {
                return Ok(None);
            }
            self.line_no += 1;
            if self.buffer.len() > MAX_LINE_BYTES && !self.buffer.ends_with(b"\n") {
                self.skip_rest_of_line().await?;
                let reason = format!("line longer than {MAX_LINE_BYTES} bytes");
                return Ok(Some((self.line_no, Err(reason))));
            }
            let blank = matches!(std::str::from_utf8(&self.buffer), Ok(t) if t.trim().is_empty());
            if !blank {
                break;
            }
        }
        let line = match std::str::from_utf8(&self.buffer) {
            Ok(text) => Ok(text.trim_end_matches(['\r', '\n'])),
            Err(e) => Err(format!("not UTF-8: {e}")),
        };
        Ok(Some((self.line_no, line)))
    }

    async fn skip_rest_of_line(&mut self) -> anyhow::Result<()> {
        loop {
            let chunk = self.input.fill_buf().await.context("reading input")?;
            if chunk.is_empty() {
                return Ok(());
            }
            match memchr::memchr(b'\n', chunk) {
                Some(at) => {
                    self.input.consume(at + 1);
                    return Ok(());
                }
                None => {
                    let len = chunk.len();
                    self.input.consume(len);
                }
            }
        }
    }
}

impl AnyLineReader {
    /// Lines of a file.
    pub async fn open(path: &Path) -> anyhow::Result<Self> {
        let file = tokio::fs::File::open(path)
            .await
            .with_context(|| format!("opening {}", path.display()))?;
        Ok(LineReader::new(Box::new(BufReader::new(file))))
    }

    /// Lines of standard input.
    pub fn stdin() -> Self {
        LineReader::new(Box::new(BufReader::new(tokio::io::stdin())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bad_lines_do_not_end_the_stream() {
        let mut input: Vec<u8> = b"{\"a\":1}\n\n\xff\xfe\n".to_vec();
        input.extend(std::iter::repeat_n(b'x', MAX_LINE_BYTES + 10));
        input.extend(b"\nlast");
        let mut reader = LineReader::new(&input[..]);
        let mut seen = Vec::new();
        while let Ok(Some((n, line))) = reader.next_line().await {
            seen.push((n, line.map(str::to_owned)));
        }
        assert_eq!(seen.len(), 4);
        assert_eq!(seen[0], (1, Ok("{\"a\":1}".to_owned())));
        assert!(seen[1].1.is_err() && seen[1].0 == 3);
        assert!(seen[2].1.is_err() && seen[2].0 == 4);
        assert_eq!(seen[3], (5, Ok("last".to_owned())));
    }
}
