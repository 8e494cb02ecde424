//! `request_file_upload_url`, `upload_file`.
//!
//! `upload_file` downloads a URL the caller names, which is a server-side request into
//! whatever network the gateway runs in. The download goes through a [`FileFetcher`] (in
//! production the SSRF-guarded `safe-fetch` crate): only public addresses, every redirect
//! re-checked, a byte cap and a time limit, and the type sniffed from the bytes.

use bytes::Bytes;
use layer_api::{FileSourceType, UploadBody, UploadUrlRequest, WorkspaceId};
use rmcp::model::CallToolResult;
use serde_json::json;

use super::schema::{array, enumeration, integer, object, open_object, string, string_max, uuid};
use super::{Args, Behaviour, ToolContext, ToolSpec, success};
use crate::errors::{Code, Subject, ToolError};
use crate::upstream::{CallKind, Outcome};

/// A downloaded file.
#[derive(Debug, Clone)]
pub struct FetchedFile {
    pub bytes: Bytes,
    /// The MIME type sniffed from the bytes (`None` when not recognised).
    pub sniffed: Option<&'static str>,
    /// What the content looks like, for messages (e.g. "an HTML page").
    pub sniffed_description: String,
    /// The URL finally fetched, after redirects, without its query string.
    pub final_url: String,
}

/// Why a download was refused or failed. The message is shown to the agent as is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FetchError(pub String);

/// Downloads public files for `upload_file`.
#[async_trait::async_trait]
pub trait FileFetcher: Send + Sync + 'static {
    async fn fetch(&self, url: &str) -> Result<FetchedFile, FetchError>;
}

/// The types `upload_file` accepts, as sniffed from the bytes.
pub const UPLOADABLE: [&str; 4] = ["image/png", "image/jpeg", "image/webp", "video/mp4"];

/// What `request_file_upload_url` accepts, with Layer's size limit for each.
const UPLOAD_LIMITS: [(&str, u64); 7] = [
    ("image/png", 100 * 1024 * 1024),
    ("image/jpeg", 100 * 1024 * 1024),
    ("image/webp", 100 * 1024 * 1024),
    ("video/mp4", 5 * 1024 * 1024 * 1024),
    ("audio/wav", 64 * 1024 * 1024),
    ("audio/mpeg", 64 * 1024 * 1024),
    ("audio/mp3", 64 * 1024 * 1024),
];

fn source_types() -> Vec<&'static str> {
    FileSourceType::KNOWN
        .iter()
        .map(FileSourceType::as_str)
        .collect()
}

pub fn specs() -> Vec<ToolSpec> {
    vec![
        ToolSpec {
            name: "request_file_upload_url",
            title: "Get an upload URL",
            description: "For a file the user has on their own machine: returns a file_id and a signed upload URL (valid 15 minutes) with the exact steps and curl commands to upload it (a resumable upload: POST to start, then PUT the bytes). After the upload, use the file_id as guidance in execute_forge or as a workflow file input. Types and limits: PNG, JPEG, WebP up to 100 MB; MP4 up to 5 GB; WAV, MP3 up to 64 MB. For a file already on the web, use upload_file instead.".to_owned(),
            input: object(
                vec![
                    ("workspace_id", uuid("The workspace, from list_workspaces.")),
                    ("content_type", enumeration("MIME type of the file.", UPLOAD_LIMITS.iter().map(|(t, _)| *t))),
                    ("file_size_bytes", integer("Exact size of the file in bytes; the upload must match it.", 1, Some(5 * 1024 * 1024 * 1024), None)),
                    ("file_name", string_max("The file's name, for display.", 255)),
                    ("source_type", enumeration("What the file is for; use mask for an inpainting mask.", source_types())),
                ],
                &["workspace_id", "content_type", "file_size_bytes"],
            ),
            output: open_object(
                vec![
                    ("file_id", uuid("Use it in execute_forge guidance_files (or mask) once uploaded.")),
                    ("upload_url", string("Signed URL, valid 15 minutes. Treat it as a secret.")),
                    ("content_type", string("Send exactly this Content-Type.")),
                    ("expires_in_seconds", integer("Validity of the URL.", 0, None, None)),
                    ("steps", array("How to upload.", string("A step."), None)),
                    ("curl", string("The same as shell commands (replace FILE with the path).")),
                ],
                &["file_id", "upload_url", "content_type", "steps"],
            ),
            behaviour: Behaviour::Writes { destructive: false, idempotent: false, open_world: false },
        },
        ToolSpec {
            name: "upload_file",
            title: "Upload a file from a URL",
            description: "Imports a file from a public http(s) URL into the workspace and returns its file_id, for use as guidance in execute_forge (e.g. a reference or init image) or as a workflow file input. The server downloads it itself: PNG, JPEG, WebP or MP4 only (checked from the file's bytes), at most 64 MB, at most 3 redirects; private, local and cloud-metadata addresses are refused. For a file on the user's machine, use request_file_upload_url.".to_owned(),
            input: object(
                vec![
                    ("workspace_id", uuid("The workspace, from list_workspaces.")),
                    ("url", json!({"type": "string", "format": "uri", "maxLength": 2048, "description": "Public http(s) URL of a PNG, JPEG, WebP or MP4."})),
                    ("file_name", string_max("Name to give the file; defaults to the URL's last path segment.", 255)),
                    ("source_type", enumeration("What the file is for; use mask for an inpainting mask.", source_types())),
                ],
                &["workspace_id", "url"],
            ),
            output: open_object(
                vec![
                    ("file_id", uuid("Use it in guidance_files or as a workflow file input.")),
                    ("content_type", string("The type detected from the bytes.")),
                    ("file_size_bytes", integer("Size uploaded.", 1, None, None)),
                    ("file_name", string("The name given.")),
                    ("source_url", string("Where it came from (without query string).")),
                ],
                &["file_id", "content_type", "file_size_bytes"],
            ),
            behaviour: Behaviour::Writes { destructive: false, idempotent: false, open_world: true },
        },
    ]
}

fn parse_source_type(args: &Args) -> Result<Option<FileSourceType>, ToolError> {
    args.opt_enum("source_type", FileSourceType::KNOWN, FileSourceType::as_str)
}

pub async fn request_file_upload_url(
    ctx: &ToolContext,
    args: Args,
) -> Result<CallToolResult, ToolError> {
    let workspace: WorkspaceId = args.id("workspace_id")?;
    let content_type = args.string("content_type", 100)?;
    let size = args.opt_int("file_size_bytes", 1, i64::MAX)?.unwrap_or(0) as u64;
    let limit = UPLOAD_LIMITS
        .iter()
        .find(|(t, _)| *t == content_type)
        .map(|(_, l)| *l)
        .ok_or_else(|| ToolError::invalid("`content_type` must be image/png, image/jpeg, image/webp, video/mp4, audio/wav or audio/mpeg"))?;
    if size > limit {
        return Err(ToolError::invalid(format!(
            "A {content_type} file may be at most {} MB; this one is {} bytes",
            limit / (1024 * 1024),
            size
        )));
    }
    let request = UploadUrlRequest {
        content_type: content_type.clone(),
        file_size_bytes: size,
        file_name: args.opt_string("file_name", 255)?,
        source_type: parse_source_type(&args)?,
    };
    let admission = ctx
        .upstream
        .admit(&ctx.caller, workspace, CallKind::Upload)
        .await?;
    let result = admission
        .client()
        .request_upload_url(workspace, &request)
        .await;
    admission.settle(if result.is_ok() {
        Outcome::Done
    } else {
        Outcome::Failed
    });
    let grant = result.map_err(|e| ToolError::from_layer(&e, Subject::File))?;
    let url = grant.upload_url.expose();
    let ct = &grant.content_type;
    let steps = vec![
        format!(
            "1. Start a resumable upload: POST {url} with headers `x-goog-resumable: start`, `Content-Type: {ct}` and `Content-Length: 0`. The answer (201) has a Location header: the upload session URL."
        ),
        format!(
            "2. PUT the file's exact {size} bytes to the session URL with `Content-Type: {ct}`. A 200 or 201 answer means it is stored."
        ),
        format!(
            "3. Use file_id {} in execute_forge guidance_files (or mask) or as a workflow file input. The URL expires 15 minutes after it was issued.",
            grant.file_id
        ),
    ];
    let curl = format!(
        "SESSION=$(curl -sS -X POST -H 'x-goog-resumable: start' -H 'Content-Type: {ct}' -H 'Content-Length: 0' -D - -o /dev/null '{url}' | awk 'tolower($1)==\"location:\" {{print $2}}' | tr -d '\\r')\ncurl -sS -X PUT -H 'Content-Type: {ct}' --data-binary @FILE \"$SESSION\""
    );
    let structured = json!({
        "file_id": grant.file_id.to_string(),
        "upload_url": url,
        "content_type": ct,
        "expires_in_seconds": 900,
        "steps": steps,
        "curl": curl,
    });
    Ok(success(structured, vec![]))
}

fn default_name(url: &str, content_type: &str) -> String {
    let from_path = url
        .split(['?', '#'])
        .next()
        .and_then(|u| u.rsplit('/').next())
        .filter(|s| !s.is_empty() && s.len() <= 255)
        .map(str::to_owned);
    from_path.unwrap_or_else(|| {
        let ext = content_type.rsplit('/').next().unwrap_or("bin");
        format!("upload.{ext}")
    })
}

pub async fn upload_file(ctx: &ToolContext, args: Args) -> Result<CallToolResult, ToolError> {
    let workspace: WorkspaceId = args.id("workspace_id")?;
    let url = args.string("url", 2048)?;
    let file_name = args.opt_string("file_name", 255)?;
    let source_type = parse_source_type(&args)?;
    // Download first: a refused URL never reaches Layer.
    let fetched = ctx
        .fetcher
        .fetch(url.trim())
        .await
        .map_err(|e| ToolError::new(Code::UploadFailed, e.0))?;
    let content_type = match fetched.sniffed.filter(|t| UPLOADABLE.contains(t)) {
        Some(t) => t,
        None => {
            return Err(ToolError::new(
                Code::UploadFailed,
                format!(
                    "The URL served {}, not a PNG, JPEG, WebP or MP4 file. Give a direct link to the file itself.",
                    fetched.sniffed_description
                ),
            ));
        }
    };
    let size = fetched.bytes.len() as u64;
    let name = file_name.unwrap_or_else(|| default_name(&fetched.final_url, content_type));
    let request = UploadUrlRequest {
        content_type: content_type.to_owned(),
        file_size_bytes: size,
        file_name: Some(name.clone()),
        source_type,
    };
    let admission = ctx
        .upstream
        .admit(&ctx.caller, workspace, CallKind::Upload)
        .await?;
    let result = admission
        .client()
        .upload(workspace, &request, UploadBody::from_bytes(fetched.bytes))
        .await;
    admission.settle(if result.is_ok() {
        Outcome::Done
    } else {
        Outcome::Failed
    });
    let grant = result.map_err(|e| {
        let mut error = ToolError::from_layer(&e, Subject::File);
        if error.code == Code::InvalidInputs {
            error.code = Code::UploadFailed;
        }
        error
    })?;
    let structured = json!({
        "file_id": grant.file_id.to_string(),
        "content_type": content_type,
        "file_size_bytes": size,
        "file_name": name,
        "source_url": fetched.final_url,
    });
    Ok(success(structured, vec![]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_names() {
        assert_eq!(
            default_name("https://x.example/a/cat.png?sig=1", "image/png"),
            "cat.png"
        );
        assert_eq!(
            default_name("https://x.example/", "image/png"),
            "upload.png"
        );
    }

    #[test]
    fn limits_cover_the_schema_enum() {
        let spec = specs()
            .into_iter()
            .find(|s| s.name == "request_file_upload_url")
            .unwrap();
        let listed: Vec<serde_json::Value> = spec.input["properties"]["content_type"]["enum"]
            .as_array()
            .unwrap()
            .clone();
        assert_eq!(listed.len(), UPLOAD_LIMITS.len());
    }
}
