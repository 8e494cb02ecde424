//! `request_file_upload_url`, `upload_file`.
//!
//! `upload_file` downloads a URL the caller names, which is a server-side request into
//! whatever network the gateway runs in. The download goes through a [`FileFetcher`] (in
//! production the SSRF-guarded `safe-fetch` crate): only public addresses, every redirect
//! re-checked, a byte cap and a time limit, and the type sniffed from the bytes.

use bytes::Bytes;
use layer_api::{FileSourceType, UploadBody, UploadUrlRequest, WorkspaceId};
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::Deserialize;
use serde_json::{Value, json};

use super::args::{self, integer, non_blank, one_of};
use super::schema::{array, integer as integer_schema, open_object, string, uuid};
use super::{Behaviour, Tool, ToolContext, ToolResult, success};
use crate::errors::{Code, Subject, ToolError};
use crate::upstream::CallKind;

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

fn uploadable(_: &mut SchemaGenerator) -> Schema {
    let types: Vec<&str> = UPLOAD_LIMITS.iter().map(|(t, _)| *t).collect();
    json_schema!({"type": "string", "enum": types})
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RequestFileUploadUrl {
    /// The workspace, from list_workspaces.
    #[schemars(schema_with = "args::uuid")]
    workspace_id: WorkspaceId,
    /// MIME type of the file.
    #[schemars(schema_with = "uploadable")]
    content_type: String,
    /// Exact size of the file in bytes; the upload must match it.
    #[serde(deserialize_with = "integer")]
    #[schemars(with = "i64", range(min = 1, max = 5_368_709_120_i64))]
    file_size_bytes: Option<i64>,
    /// The file's name, for display.
    #[serde(default, deserialize_with = "non_blank")]
    #[schemars(length(max = 255))]
    file_name: Option<String>,
    /// What the file is for; use mask for an inpainting mask.
    #[serde(default)]
    #[schemars(schema_with = "one_of::<FileSourceType>")]
    source_type: Option<FileSourceType>,
}

impl Tool for RequestFileUploadUrl {
    const NAME: &'static str = "request_file_upload_url";
    const TITLE: &'static str = "Get an upload URL";
    const DESCRIPTION: &'static str = "For a file the user has on their own machine: returns a file_id and a signed upload URL (valid 15 minutes) with the exact steps and curl commands to upload it (a resumable upload: POST to start, then PUT the bytes). After the upload, use the file_id as guidance in execute_forge or as a workflow file input. Types and limits: PNG, JPEG, WebP up to 100 MB; MP4 up to 5 GB; WAV, MP3 up to 64 MB. For a file already on the web, use upload_file instead.";
    const BEHAVIOUR: Behaviour = Behaviour::CREATES;

    fn output() -> Value {
        open_object(
            vec![
                (
                    "file_id",
                    uuid("Use it in execute_forge guidance_files (or mask) once uploaded."),
                ),
                (
                    "upload_url",
                    string("Signed URL, valid 15 minutes. Treat it as a secret."),
                ),
                ("content_type", string("Send exactly this Content-Type.")),
                (
                    "expires_in_seconds",
                    integer_schema("Validity of the URL.", 0, None, None),
                ),
                ("steps", array("How to upload.", string("A step."), None)),
                (
                    "curl",
                    string("The same as shell commands (replace FILE with the path)."),
                ),
            ],
            &["file_id", "upload_url", "content_type", "steps"],
        )
    }

    async fn call(self, ctx: &ToolContext) -> ToolResult {
        let workspace = self.workspace_id;
        let content_type = self.content_type;
        let size = self.file_size_bytes.unwrap_or(0).max(0) as u64;
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
            file_name: self.file_name,
            source_type: self.source_type,
        };
        let grant = ctx
            .read(
                Some(workspace),
                CallKind::Upload,
                Subject::File,
                |layer| async move { layer.request_upload_url(workspace, &request).await },
            )
            .await?;
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
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UploadFile {
    /// The workspace, from list_workspaces.
    #[schemars(schema_with = "args::uuid")]
    workspace_id: WorkspaceId,
    /// Public http(s) URL of a PNG, JPEG, WebP or MP4.
    #[schemars(length(max = 2048), extend("format" = "uri"))]
    url: String,
    /// Name to give the file; defaults to the URL's last path segment.
    #[serde(default, deserialize_with = "non_blank")]
    #[schemars(length(max = 255))]
    file_name: Option<String>,
    /// What the file is for; use mask for an inpainting mask.
    #[serde(default)]
    #[schemars(schema_with = "one_of::<FileSourceType>")]
    source_type: Option<FileSourceType>,
}

impl Tool for UploadFile {
    const NAME: &'static str = "upload_file";
    const TITLE: &'static str = "Upload a file from a URL";
    const DESCRIPTION: &'static str = "Imports a file from a public http(s) URL into the workspace and returns its file_id, for use as guidance in execute_forge (e.g. a reference or init image) or as a workflow file input. The server downloads it itself: PNG, JPEG, WebP or MP4 only (checked from the file's bytes), at most 64 MB, at most 3 redirects; private, local and cloud-metadata addresses are refused. For a file on the user's machine, use request_file_upload_url.";
    const BEHAVIOUR: Behaviour = Behaviour::Writes {
        destructive: false,
        idempotent: false,
        open_world: true,
    };

    fn output() -> Value {
        open_object(
            vec![
                (
                    "file_id",
                    uuid("Use it in guidance_files or as a workflow file input."),
                ),
                ("content_type", string("The type detected from the bytes.")),
                (
                    "file_size_bytes",
                    integer_schema("Size uploaded.", 1, None, None),
                ),
                ("file_name", string("The name given.")),
                (
                    "source_url",
                    string("Where it came from (without query string)."),
                ),
            ],
            &["file_id", "content_type", "file_size_bytes"],
        )
    }

    async fn call(self, ctx: &ToolContext) -> ToolResult {
        let workspace = self.workspace_id;
        if self.url.trim().is_empty() {
            return Err(ToolError::invalid("`url` is required"));
        }
        // Download first: a refused URL never reaches Layer.
        let fetched = ctx
            .fetcher
            .fetch(self.url.trim())
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
        let name = self
            .file_name
            .unwrap_or_else(|| default_name(&fetched.final_url, content_type));
        let request = UploadUrlRequest {
            content_type: content_type.to_owned(),
            file_size_bytes: size,
            file_name: Some(name.clone()),
            source_type: self.source_type,
        };
        let body = UploadBody::from_bytes(fetched.bytes);
        let grant = ctx
            .read(
                Some(workspace),
                CallKind::Upload,
                Subject::File,
                |layer| async move { layer.upload(workspace, &request, body).await },
            )
            .await
            .map_err(|mut error| {
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
        let input = super::super::schema::input::<RequestFileUploadUrl>();
        let listed: Vec<serde_json::Value> = input["properties"]["content_type"]["enum"]
            .as_array()
            .unwrap()
            .clone();
        assert_eq!(listed.len(), UPLOAD_LIMITS.len());
    }
}
