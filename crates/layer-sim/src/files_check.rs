//! Checks that a file id named in a request is usable: same workspace, fully uploaded, and of
//! a kind the slot takes.

use serde_json::{Value, json};

use crate::ids::{FileId, WorkspaceId};
use crate::problem::{ApiError, ValidationItem};
use crate::state::{FileStatus, Inner};

/// What a slot expects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Media {
    Image,
    Video,
    Audio,
    Mesh,
}

impl Media {
    pub fn for_guidance(kind: &str) -> Media {
        match kind {
            "init_video" | "reference_video" | "draft_video" | "element_video" => Media::Video,
            "init_audio" | "reference_audio" => Media::Audio,
            "init_mesh" | "draft_mesh" | "draft_world" => Media::Mesh,
            _ => Media::Image,
        }
    }

    fn accepts(self, content_type: &str) -> bool {
        match self {
            Media::Image => content_type.starts_with("image/"),
            Media::Video => content_type.starts_with("video/"),
            Media::Audio => content_type.starts_with("audio/"),
            Media::Mesh => content_type.starts_with("model/"),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Media::Image => "an image",
            Media::Video => "a video",
            Media::Audio => "audio",
            Media::Mesh => "a 3D model",
        }
    }
}

/// Unknown (or another workspace's) file: 404 `FILE_NOT_FOUND`, returned at once. Known but
/// not uploaded, failed, or of the wrong kind: a 422 item, collected.
pub fn check_file(
    inner: &Inner,
    ws: WorkspaceId,
    id: FileId,
    media: Media,
    loc: Vec<Value>,
    errors: &mut Vec<ValidationItem>,
) -> Result<(), ApiError> {
    let file = inner
        .files
        .get(&id)
        .filter(|f| f.workspace == ws)
        .ok_or(ApiError::FileNotFound)?;
    let problem = match file.status {
        FileStatus::AwaitingUpload | FileStatus::Uploading => Some(
            "Value error, the file has not been uploaded yet: finish the upload first".to_owned(),
        ),
        FileStatus::Failed => {
            Some("Value error, the file's upload failed; upload it again".to_owned())
        }
        FileStatus::Ready if !media.accepts(&file.content_type) => Some(format!(
            "Value error, this slot takes {}, not {}",
            media.name(),
            file.content_type
        )),
        FileStatus::Ready => None,
    };
    if let Some(msg) = problem {
        errors.push(ValidationItem::new(loc, "value_error", msg).input(json!(id)));
    }
    Ok(())
}
