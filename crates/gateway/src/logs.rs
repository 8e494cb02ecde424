//! Text logs a request cannot forge. A string from a request (an id, a method or tool name,
//! a path, a session id) may hold a newline, a carriage return or an ANSI escape; written
//! raw it would start a forged log line or recolour a terminal. Our own fields record such
//! strings with `Debug` (quoted and escaped), and this writer escapes whatever still holds a
//! control character (a dependency's message, a `Display` field) inside each event, so one
//! event is always one line. JSON logs need none of it: JSON escapes control characters.

use std::io::{self, Write};

use tracing_subscriber::fmt::MakeWriter;

/// Standard error, one escaped line per event. With `keep_ansi` (colours on a terminal) the
/// formatter's own escapes pass; tracing-subscriber escapes those in field values.
#[derive(Debug, Clone, Copy)]
pub struct EscapingStderr {
    pub keep_ansi: bool,
}

impl<'a> MakeWriter<'a> for EscapingStderr {
    type Writer = Escaping<io::Stderr>;

    fn make_writer(&'a self) -> Self::Writer {
        Escaping {
            inner: io::stderr(),
            keep_ansi: self.keep_ansi,
        }
    }
}

/// Escapes the control characters of each write (one formatted event) but its final newline.
#[derive(Debug)]
pub struct Escaping<W> {
    inner: W,
    keep_ansi: bool,
}

impl<W: Write> Write for Escaping<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write_all(&escape_event(buf, self.keep_ansi))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// `event` with every control character (C0 but tab, DEL, C1; ESC only without
/// `keep_ansi`) written as an escape, but a final newline.
pub fn escape_event(event: &[u8], keep_ansi: bool) -> Vec<u8> {
    let (body, end): (&[u8], &[u8]) = match event.strip_suffix(b"\n") {
        Some(body) => (body, b"\n"),
        None => (event, b""),
    };
    let mut out = Vec::with_capacity(event.len() + 16);
    let mut i = 0;
    while i < body.len() {
        let byte = body[i];
        match byte {
            b'\t' => out.push(byte),
            0x1b if keep_ansi => out.push(byte),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            0..=0x1f | 0x7f => out.extend_from_slice(format!("\\x{byte:02x}").as_bytes()),
            // C1 controls, UTF-8 encoded (0xC2 0x80..=0x9F): some terminals act on them.
            0xc2 if body.get(i + 1).is_some_and(|b| (0x80..=0x9f).contains(b)) => {
                out.extend_from_slice(format!("\\u{{{:x}}}", body[i + 1]).as_bytes());
                i += 1;
            }
            _ => out.push(byte),
        }
        i += 1;
    }
    out.extend_from_slice(end);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_event_stays_one_line() {
        let event = "INFO x: tool=a\nFORGED \u{1b}[31mred\r\u{85}\tok\n".as_bytes();
        let escaped = String::from_utf8(escape_event(event, false)).unwrap();
        assert_eq!(
            escaped,
            "INFO x: tool=a\\nFORGED \\x1b[31mred\\r\\u{85}\tok\n"
        );
        let coloured = escape_event("\u{1b}[2mtime\u{1b}[0m a\nb\n".as_bytes(), true);
        assert_eq!(coloured, "\u{1b}[2mtime\u{1b}[0m a\\nb\n".as_bytes());
        assert_eq!(
            escape_event("plain é\n".as_bytes(), false),
            "plain é\n".as_bytes()
        );
    }
}
