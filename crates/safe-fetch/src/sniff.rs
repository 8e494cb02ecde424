//! What the bytes are, whatever the server's `Content-Type` says.

use std::fmt;

/// The type of a body, told from its first bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SniffedType {
    Png,
    Jpeg,
    Webp,
    Gif,
    /// An ISO base media file whose major brand is an MP4 one (`isom`, `mp41`, `mp42`, ...).
    Mp4,
    /// An HTML page (a common answer from a URL that was not the file the user meant).
    Html,
    Unknown,
}

impl SniffedType {
    /// The MIME type, for the types that have one here.
    pub fn mime(self) -> Option<&'static str> {
        Some(match self {
            Self::Png => "image/png",
            Self::Jpeg => "image/jpeg",
            Self::Webp => "image/webp",
            Self::Gif => "image/gif",
            Self::Mp4 => "video/mp4",
            Self::Html => "text/html",
            Self::Unknown => return None,
        })
    }
}

impl fmt::Display for SniffedType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Png => "PNG image",
            Self::Jpeg => "JPEG image",
            Self::Webp => "WebP image",
            Self::Gif => "GIF image",
            Self::Mp4 => "MP4 video",
            Self::Html => "HTML page",
            Self::Unknown => "unknown type",
        })
    }
}

/// Tell the type from the first bytes of a body.
pub fn sniff(bytes: &[u8]) -> SniffedType {
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        SniffedType::Png
    } else if bytes.starts_with(b"\xff\xd8\xff") {
        SniffedType::Jpeg
    } else if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        SniffedType::Webp
    } else if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
        SniffedType::Gif
    } else if is_mp4(bytes) {
        SniffedType::Mp4
    } else if is_html(bytes) {
        SniffedType::Html
    } else {
        SniffedType::Unknown
    }
}

const MP4_BRANDS: &[&[u8; 4]] = &[
    b"isom", b"iso2", b"iso3", b"iso4", b"iso5", b"iso6", b"iso7", b"iso8", b"iso9", b"mp41",
    b"mp42", b"mp71", b"avc1", b"dash", b"mmp4", b"M4V ", b"M4VH", b"M4VP", b"f4v ", b"MSNV",
];

/// An `ftyp` box first, with an MP4 major brand (not HEIF, AVIF, QuickTime or audio-only M4A).
fn is_mp4(bytes: &[u8]) -> bool {
    let Some(head) = bytes.get(..12) else {
        return false;
    };
    let size = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
    &head[4..8] == b"ftyp" && size >= 16 && MP4_BRANDS.iter().any(|b| &head[8..12] == *b)
}

/// The WHATWG MIME sniffing patterns for HTML: after optional BOM and whitespace, one of these
/// case-insensitive openings followed by a space or `>`.
fn is_html(bytes: &[u8]) -> bool {
    const OPENINGS: &[&[u8]] = &[
        b"<!DOCTYPE HTML",
        b"<HTML",
        b"<HEAD",
        b"<SCRIPT",
        b"<IFRAME",
        b"<H1",
        b"<DIV",
        b"<FONT",
        b"<TABLE",
        b"<A",
        b"<STYLE",
        b"<TITLE",
        b"<B",
        b"<BODY",
        b"<BR",
        b"<P",
        b"<!--",
    ];
    let body = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    let start = body
        .iter()
        .position(|b| !matches!(b, b'\t' | b'\n' | b'\x0c' | b'\r' | b' '));
    let Some(body) = start.map(|i| &body[i..]) else {
        return false;
    };
    OPENINGS.iter().any(|opening| {
        body.len() > opening.len()
            && body[..opening.len()].eq_ignore_ascii_case(opening)
            && matches!(body[opening.len()], b' ' | b'>')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magic_numbers_and_html_openings() {
        let table: [(&[u8], SniffedType); 18] = [
            (b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR", SniffedType::Png),
            (b"\xff\xd8\xff\xe0\0\x10JFIF", SniffedType::Jpeg),
            (b"RIFF\x24\0\0\0WEBPVP8 ", SniffedType::Webp),
            (b"RIFF\x24\0\0\0WAVEfmt ", SniffedType::Unknown),
            (b"GIF89a\x01\0\x01\0", SniffedType::Gif),
            (b"\0\0\0\x20ftypisom\0\0\x02\0", SniffedType::Mp4),
            (b"\0\0\0\x18ftypheic\0\0\0\0", SniffedType::Unknown),
            (b"\0\0\0\x14ftypqt  \0\0\0\0", SniffedType::Unknown),
            (b"", SniffedType::Unknown),
            (b"\x89PN", SniffedType::Unknown),
            (b"<!doctype html>\n<html>", SniffedType::Html),
            (b"\xef\xbb\xbf  \n<HTML lang=en>", SniffedType::Html),
            (b"<!-- comment -->", SniffedType::Html),
            (b"<p>hello", SniffedType::Html),
            (b"<pre>", SniffedType::Unknown),
            (b"<?xml version=\"1.0\"?><svg/>", SniffedType::Unknown),
            (b"   ", SniffedType::Unknown),
            (b"{\"a\":1}", SniffedType::Unknown),
        ];
        for (bytes, want) in table {
            assert_eq!(sniff(bytes), want, "{:?}", String::from_utf8_lossy(bytes));
        }
    }
}
