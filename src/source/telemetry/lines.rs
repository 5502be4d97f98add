//! JSON-lines input from a file or stdin: one item per line, blank lines
//! skipped; a line that is too long or not UTF-8 is an error for that line
//! only, so one bad line never ends the stream.

use std::path::Path;

use anyhow::Context;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, BufReader};

/// Longest line taken (rtl_433 objects are a few hundred bytes).
pub const MAX_LINE_BYTES: usize = 1 << 20;

/// Reads `input` line by line; `on_line` gets the 1-based line number and
/// the line or why it could not be read.
pub async fn for_each_line<R, F>(input: R, mut on_line: F) -> anyhow::Result<u64>
where
    R: AsyncBufRead + Unpin,
    F: FnMut(u64, Result<&str, String>),
{
    let mut input = input;
    let mut buffer = Vec::with_capacity(1024);
    let mut line_no = 0u64;
    loop {
        buffer.clear();
        let read = (&mut input)
            .take(MAX_LINE_BYTES as u64 + 1)
            .read_until(b'\n', &mut buffer)
            .await
            .context("reading input")?;
        if read == 0 {
            return Ok(line_no);
        }
        line_no += 1;
        if buffer.len() > MAX_LINE_BYTES && !buffer.ends_with(b"\n") {
            skip_rest_of_line(&mut input).await?;
            on_line(line_no, Err(format!("line longer than {MAX_LINE_BYTES} bytes")));
            continue;
        }
        match std::str::from_utf8(&buffer) {
            Ok(text) if text.trim().is_empty() => {}
            Ok(text) => on_line(line_no, Ok(text.trim_end_matches(['\r', '\n']))),
            Err(e) => on_line(line_no, Err(format!("not UTF-8: {e}"))),
        }
    }
}

async fn skip_rest_of_line<R: AsyncBufRead + Unpin>(input: &mut R) -> anyhow::Result<()> {
    loop {
        let chunk = input.fill_buf().await.context("reading input")?;
        if chunk.is_empty() {
            return Ok(());
        }
        match memchr::memchr(b'\n', chunk) {
            Some(at) => {
                input.consume(at + 1);
                return Ok(());
            }
            None => {
                let len = chunk.len();
                input.consume(len);
            }
        }
    }
}

/// [`for_each_line`] over a file.
pub async fn for_each_line_of_file<F>(path: &Path, on_line: F) -> anyhow::Result<u64>
where
    F: FnMut(u64, Result<&str, String>),
{
    let file = tokio::fs::File::open(path)
        .await
        .with_context(|| format!("opening {}", path.display()))?;
    for_each_line(BufReader::new(file), on_line)
        .await
        .with_context(|| format!("reading {}", path.display()))
}

/// [`for_each_line`] over standard input.
pub async fn for_each_line_of_stdin<F>(on_line: F) -> anyhow::Result<u64>
where
    F: FnMut(u64, Result<&str, String>),
{
    for_each_line(BufReader::new(tokio::io::stdin()), on_line).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bad_lines_do_not_end_the_stream() {
        let mut input: Vec<u8> = b"{\"a\":1}\n\n\xff\xfe\n".to_vec();
        input.extend(std::iter::repeat_n(b'x', MAX_LINE_BYTES + 10));
        input.extend(b"\nlast");
        let mut seen = Vec::new();
        let lines = for_each_line(&input[..], |n, line| {
            seen.push((n, line.map(str::to_owned)));
        })
        .await
        .unwrap_or(0);
        assert_eq!(lines, 5);
        assert_eq!(seen.len(), 4);
        assert_eq!(seen[0], (1, Ok("{\"a\":1}".to_owned())));
        assert!(seen[1].1.is_err() && seen[1].0 == 3);
        assert!(seen[2].1.is_err() && seen[2].0 == 4);
        assert_eq!(seen[3], (5, Ok("last".to_owned())));
    }
}
