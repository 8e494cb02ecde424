//! Real files for generated outputs: PNG, MP4, WAV and GLB, rendered on demand from a small
//! description so the record's size and dimensions are known before any byte is produced.

use serde_json::json;

/// A file the simulator can render, deterministically, from these few numbers.
#[derive(Clone, Debug, PartialEq)]
pub enum Generated {
    /// An RGB image with a gradient and a disc whose colours come from the seed.
    Png { width: u32, height: u32, seed: u64 },
    /// An ISO BMFF file (`ftyp` + `moov`/`mvhd` carrying the duration + `mdat`).
    Mp4 { duration_ms: u32, seed: u64 },
    /// 16-bit mono PCM at 8 kHz: a tone whose pitch comes from the seed.
    Wav { duration_ms: u32, seed: u64 },
    /// Binary glTF 2.0 with one tetrahedron.
    Glb { seed: u64 },
}

const WAV_RATE: u32 = 8_000;
const MAX_STORED_BLOCK: usize = 65_535;

impl Generated {
    pub fn content_type(&self) -> &'static str {
        self.file_type().0
    }

    pub fn extension(&self) -> &'static str {
        self.file_type().1
    }

    /// Content type and file name extension, side by side.
    fn file_type(&self) -> (&'static str, &'static str) {
        match self {
            Generated::Png { .. } => ("image/png", "png"),
            Generated::Mp4 { .. } => ("video/mp4", "mp4"),
            Generated::Wav { .. } => ("audio/wav", "wav"),
            Generated::Glb { .. } => ("model/gltf-binary", "glb"),
        }
    }

    /// Exact byte length of `render()`, without rendering (images can be megabytes).
    pub fn size(&self) -> u64 {
        match self {
            Generated::Png { width, height, .. } => {
                let raw = u64::from(*height) * (1 + 3 * u64::from(*width));
                let blocks = raw.div_ceil(MAX_STORED_BLOCK as u64).max(1);
                let zlib = 2 + blocks * 5 + raw + 4;
                8 + 25 + (12 + zlib) + 12
            }
            Generated::Wav { duration_ms, .. } => 44 + 2 * wav_samples(*duration_ms),
            Generated::Mp4 { .. } | Generated::Glb { .. } => self.render().len() as u64,
        }
    }

    pub fn render(&self) -> Vec<u8> {
        match self {
            Generated::Png {
                width,
                height,
                seed,
            } => render_png(*width, *height, *seed),
            Generated::Mp4 { duration_ms, seed } => render_mp4(*duration_ms, *seed),
            Generated::Wav { duration_ms, seed } => render_wav(*duration_ms, *seed),
            Generated::Glb { seed } => render_glb(*seed),
        }
    }
}

/// Dimensions of a preview that fits in 256 x 256 and keeps the aspect ratio.
pub fn preview_size(width: u32, height: u32) -> (u32, u32) {
    let longest = width.max(height).max(1);
    if longest <= 256 {
        return (width.max(1), height.max(1));
    }
    let scale = 256.0 / f64::from(longest);
    (
        ((f64::from(width) * scale).round() as u32).max(1),
        ((f64::from(height) * scale).round() as u32).max(1),
    )
}

fn palette(seed: u64) -> [[u8; 3]; 3] {
    let b = seed.to_le_bytes();
    let mix = |i: usize| b[i] ^ b[(i + 3) % 8].rotate_left(3);
    [
        [mix(0), mix(1), mix(2)],
        [mix(3), mix(4), mix(5)],
        [255 - mix(6), mix(7), 255 - mix(0)],
    ]
}

fn render_png(width: u32, height: u32, seed: u64) -> Vec<u8> {
    let (w, h) = (width as usize, height as usize);
    let [c1, c2, c3] = palette(seed);
    let mut raw = Vec::with_capacity(h * (1 + 3 * w));
    let (cx, cy) = (w as i64 / 2, h as i64 / 2);
    let radius = (w.min(h) as i64) / 4;
    let r2 = radius * radius;
    let span = (w + h).max(1) as u32;
    for y in 0..h {
        raw.push(0); // filter: none
        for x in 0..w {
            let (dx, dy) = (x as i64 - cx, y as i64 - cy);
            if dx * dx + dy * dy <= r2 {
                raw.extend_from_slice(&c3);
            } else {
                let t = (x + y) as u32;
                for ch in 0..3 {
                    let v = (u32::from(c1[ch]) * (span - t) + u32::from(c2[ch]) * t) / span;
                    raw.push(v as u8);
                }
            }
        }
    }
    let mut zlib = Vec::with_capacity(raw.len() + raw.len() / MAX_STORED_BLOCK * 5 + 16);
    zlib.extend_from_slice(&[0x78, 0x01]);
    let mut chunks = raw.chunks(MAX_STORED_BLOCK).peekable();
    if chunks.peek().is_none() {
        zlib.extend_from_slice(&[1, 0, 0, 0xff, 0xff]);
    }
    while let Some(chunk) = chunks.next() {
        let last = u8::from(chunks.peek().is_none());
        let len = chunk.len() as u16;
        zlib.push(last);
        zlib.extend_from_slice(&len.to_le_bytes());
        zlib.extend_from_slice(&(!len).to_le_bytes());
        zlib.extend_from_slice(chunk);
    }
    zlib.extend_from_slice(&adler32(&raw).to_be_bytes());

    let mut png = Vec::with_capacity(zlib.len() + 64);
    png.extend_from_slice(b"\x89PNG\r\n\x1a\n");
    let mut ihdr = Vec::with_capacity(13);
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]); // 8-bit RGB
    png_chunk(&mut png, b"IHDR", &ihdr);
    png_chunk(&mut png, b"IDAT", &zlib);
    png_chunk(&mut png, b"IEND", &[]);
    png
}

fn png_chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let mut crc = crc32fast::Hasher::new();
    crc.update(kind);
    crc.update(data);
    out.extend_from_slice(&crc.finalize().to_be_bytes());
}

fn adler32(data: &[u8]) -> u32 {
    const MOD: u32 = 65_521;
    let (mut a, mut b) = (1u32, 0u32);
    for chunk in data.chunks(5_552) {
        for byte in chunk {
            a += u32::from(*byte);
            b += a;
        }
        a %= MOD;
        b %= MOD;
    }
    (b << 16) | a
}

fn mp4_box(kind: &[u8; 4], payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 8);
    out.extend_from_slice(&((payload.len() + 8) as u32).to_be_bytes());
    out.extend_from_slice(kind);
    out.extend_from_slice(payload);
    out
}

fn render_mp4(duration_ms: u32, seed: u64) -> Vec<u8> {
    let mut ftyp = Vec::new();
    ftyp.extend_from_slice(b"isom");
    ftyp.extend_from_slice(&512u32.to_be_bytes());
    ftyp.extend_from_slice(b"isomiso2mp41");

    let mut mvhd = Vec::with_capacity(100);
    mvhd.extend_from_slice(&[0, 0, 0, 0]); // version 0, flags
    mvhd.extend_from_slice(&0u32.to_be_bytes()); // creation time
    mvhd.extend_from_slice(&0u32.to_be_bytes()); // modification time
    mvhd.extend_from_slice(&1000u32.to_be_bytes()); // timescale: milliseconds
    mvhd.extend_from_slice(&duration_ms.to_be_bytes());
    mvhd.extend_from_slice(&0x0001_0000u32.to_be_bytes()); // rate 1.0
    mvhd.extend_from_slice(&0x0100u16.to_be_bytes()); // volume 1.0
    mvhd.extend_from_slice(&[0; 10]);
    for v in [0x0001_0000u32, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000] {
        mvhd.extend_from_slice(&v.to_be_bytes()); // identity matrix
    }
    mvhd.extend_from_slice(&[0; 24]);
    mvhd.extend_from_slice(&1u32.to_be_bytes()); // next track id
    let moov = mp4_box(b"moov", &mp4_box(b"mvhd", &mvhd));

    // Opaque payload, a few bytes per second, so sizes grow with duration as real files do.
    let payload: Vec<u8> = (0..(duration_ms / 10) as usize)
        .map(|i| (seed as usize).wrapping_add(i.wrapping_mul(31)) as u8)
        .collect();
    let mut out = mp4_box(b"ftyp", &ftyp);
    out.extend_from_slice(&moov);
    out.extend_from_slice(&mp4_box(b"mdat", &payload));
    out
}

fn wav_samples(duration_ms: u32) -> u64 {
    u64::from(duration_ms) * u64::from(WAV_RATE) / 1000
}

fn render_wav(duration_ms: u32, seed: u64) -> Vec<u8> {
    let samples = wav_samples(duration_ms);
    let data_len = (samples * 2) as u32;
    let mut out = Vec::with_capacity(44 + data_len as usize);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes()); // PCM
    out.extend_from_slice(&1u16.to_le_bytes()); // mono
    out.extend_from_slice(&WAV_RATE.to_le_bytes());
    out.extend_from_slice(&(WAV_RATE * 2).to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    let freq = 220.0 + (seed % 660) as f64;
    let step = 2.0 * std::f64::consts::PI * freq / f64::from(WAV_RATE);
    for n in 0..samples {
        let v = ((n as f64 * step).sin() * 8_000.0) as i16;
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

fn render_glb(seed: u64) -> Vec<u8> {
    let scale = 0.5 + (seed % 100) as f32 / 100.0;
    let vertices: [[f32; 3]; 4] = [
        [0.0, scale, 0.0],
        [-scale, -scale, scale],
        [scale, -scale, scale],
        [0.0, -scale, -scale],
    ];
    let indices: [u16; 12] = [0, 1, 2, 0, 2, 3, 0, 3, 1, 1, 3, 2];
    let mut bin = Vec::with_capacity(72);
    for v in vertices {
        for c in v {
            bin.extend_from_slice(&c.to_le_bytes());
        }
    }
    for i in indices {
        bin.extend_from_slice(&i.to_le_bytes());
    }
    let gltf = json!({
        "asset": {"version": "2.0", "generator": "layer-sim"},
        "scene": 0,
        "scenes": [{"nodes": [0]}],
        "nodes": [{"mesh": 0, "name": "asset"}],
        "meshes": [{"primitives": [{"attributes": {"POSITION": 0}, "indices": 1}]}],
        "buffers": [{"byteLength": bin.len()}],
        "bufferViews": [
            {"buffer": 0, "byteOffset": 0, "byteLength": 48, "target": 34962},
            {"buffer": 0, "byteOffset": 48, "byteLength": 24, "target": 34963}
        ],
        "accessors": [
            {"bufferView": 0, "componentType": 5126, "count": 4, "type": "VEC3",
             "min": [-scale, -scale, -scale], "max": [scale, scale, scale]},
            {"bufferView": 1, "componentType": 5123, "count": 12, "type": "SCALAR"}
        ]
    });
    let mut json_bytes = gltf.to_string().into_bytes();
    while !json_bytes.len().is_multiple_of(4) {
        json_bytes.push(b' ');
    }
    let total = 12 + 8 + json_bytes.len() + 8 + bin.len();
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(b"glTF");
    out.extend_from_slice(&2u32.to_le_bytes());
    out.extend_from_slice(&(total as u32).to_le_bytes());
    out.extend_from_slice(&(json_bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(b"JSON");
    out.extend_from_slice(&json_bytes);
    out.extend_from_slice(&(bin.len() as u32).to_le_bytes());
    out.extend_from_slice(b"BIN\0");
    out.extend_from_slice(&bin);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_match_rendered_bytes() {
        for g in [
            Generated::Png {
                width: 300,
                height: 200,
                seed: 9,
            },
            Generated::Png {
                width: 1,
                height: 1,
                seed: 1,
            },
            Generated::Wav {
                duration_ms: 1500,
                seed: 3,
            },
            Generated::Mp4 {
                duration_ms: 5000,
                seed: 3,
            },
            Generated::Glb { seed: 4 },
        ] {
            assert_eq!(g.size(), g.render().len() as u64, "{g:?}");
        }
    }

    #[test]
    fn png_header_carries_dimensions() {
        let bytes = Generated::Png {
            width: 640,
            height: 360,
            seed: 1,
        }
        .render();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
        assert_eq!(
            u32::from_be_bytes([bytes[16], bytes[17], bytes[18], bytes[19]]),
            640
        );
        assert_eq!(
            u32::from_be_bytes([bytes[20], bytes[21], bytes[22], bytes[23]]),
            360
        );
    }

    #[test]
    fn same_seed_same_bytes() {
        let a = Generated::Png {
            width: 32,
            height: 32,
            seed: 5,
        };
        assert_eq!(a.render(), a.render());
        let b = Generated::Png {
            width: 32,
            height: 32,
            seed: 6,
        };
        assert_ne!(a.render(), b.render());
    }
}
