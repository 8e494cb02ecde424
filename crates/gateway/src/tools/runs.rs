//! What a finished run shows a person: a resource link per output (URL, MIME type, size) and
//! a short summary (what was made, Creative Units charged, balance left). Shared by
//! `get_forge_run` and `get_workflow_run`.

use rmcp::model::{ContentBlock, Resource};

/// One output file, whatever kind of run made it.
pub struct OutputFile<'a> {
    pub url: &'a str,
    pub content_type: &'a str,
    pub file_size_bytes: Option<u64>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub duration_seconds: Option<f64>,
}

fn extension(content_type: &str) -> &str {
    match content_type.split(';').next().unwrap_or("").trim() {
        "image/png" => "png",
        "image/jpeg" => "jpg",
        "image/webp" => "webp",
        "image/svg+xml" => "svg",
        "video/mp4" => "mp4",
        "audio/wav" | "audio/x-wav" | "audio/wave" => "wav",
        "audio/mpeg" => "mp3",
        "model/gltf-binary" => "glb",
        _ => "bin",
    }
}

fn kind_of(content_type: &str) -> &'static str {
    match content_type.split('/').next().unwrap_or("") {
        "image" => "image",
        "video" => "video",
        "audio" => "audio clip",
        "model" => "3D model",
        _ => "file",
    }
}

fn describe(file: &OutputFile<'_>) -> String {
    let mut parts = vec![file.content_type.to_owned()];
    if let (Some(w), Some(h)) = (file.width, file.height) {
        parts.push(format!("{w}x{h}"));
    }
    if let Some(d) = file.duration_seconds {
        parts.push(format!("{d} s"));
    }
    if let Some(size) = file.file_size_bytes {
        parts.push(format!("{size} bytes"));
    }
    parts.join(", ")
}

/// A `resource_link` block per output.
pub fn resource_links(run_id: &str, files: &[OutputFile<'_>]) -> Vec<ContentBlock> {
    files
        .iter()
        .enumerate()
        .map(|(i, file)| {
            let name = format!("{run_id}-{}.{}", i + 1, extension(file.content_type));
            let mut resource = Resource::new(file.url, name)
                .with_mime_type(file.content_type)
                .with_description(describe(file));
            if let Some(size) = file.file_size_bytes {
                resource = resource.with_size(size);
            }
            ContentBlock::resource_link(resource)
        })
        .collect()
}

/// "4 images and 1 video".
pub fn what_was_made(files: &[OutputFile<'_>]) -> String {
    let mut counts: Vec<(&'static str, usize)> = Vec::new();
    for file in files {
        let kind = kind_of(file.content_type);
        match counts.iter_mut().find(|(k, _)| *k == kind) {
            Some((_, n)) => *n += 1,
            None => counts.push((kind, 1)),
        }
    }
    if counts.is_empty() {
        return "no outputs".to_owned();
    }
    counts
        .iter()
        .map(|(kind, n)| {
            if *n == 1 {
                format!("1 {kind}")
            } else {
                format!("{n} {kind}s")
            }
        })
        .collect::<Vec<_>>()
        .join(" and ")
}

/// The summary of a successful run.
pub fn success_summary(
    run_label: &str,
    files: &[OutputFile<'_>],
    charged: Option<f64>,
    balance: Option<(String, f64)>,
) -> String {
    let mut text = format!("{run_label} is complete: made {}.", what_was_made(files));
    for (i, file) in files.iter().enumerate() {
        text.push_str(&format!("\n{}. {} ({})", i + 1, file.url, describe(file)));
    }
    match charged {
        Some(cu) => text.push_str(&format!("\nCharged {} Creative Units.", round(cu))),
        None => text.push_str("\nThe charge is not reported yet."),
    }
    if let Some((workspace, available)) = balance {
        text.push_str(&format!(
            " {workspace} has {} Creative Units available.",
            round(available)
        ));
    }
    text
}

/// Two decimals at most, without trailing zeros.
pub fn round(value: f64) -> String {
    let text = format!("{value:.2}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(url: &str) -> OutputFile<'_> {
        OutputFile {
            url,
            content_type: "image/png",
            file_size_bytes: Some(1234),
            width: Some(64),
            height: Some(64),
            duration_seconds: None,
        }
    }

    #[test]
    fn summaries_say_what_was_made_and_charged() {
        let files = [png("http://x/1.png"), png("http://x/2.png")];
        let text = success_summary(
            "Forge run abc",
            &files,
            Some(12.5),
            Some(("Studio".into(), 987.5)),
        );
        assert!(
            text.starts_with("Forge run abc is complete: made 2 images."),
            "{text}"
        );
        assert!(
            text.contains(
                "Charged 12.5 Creative Units. Studio has 987.5 Creative Units available."
            ),
            "{text}"
        );
        assert!(
            text.contains("http://x/2.png (image/png, 64x64, 1234 bytes)"),
            "{text}"
        );
    }

    #[test]
    fn links_carry_url_type_and_size() {
        let links = resource_links("run", &[png("http://x/1.png")]);
        let link = links[0].as_resource_link().unwrap();
        assert_eq!(link.uri, "http://x/1.png");
        assert_eq!(link.mime_type.as_deref(), Some("image/png"));
        assert_eq!(link.size, Some(1234));
        assert_eq!(link.name, "run-1.png");
    }

    #[test]
    fn rounding() {
        assert_eq!(round(12.0), "12");
        assert_eq!(round(0.126), "0.13");
        assert_eq!(round(-3.5), "-3.5");
    }
}
