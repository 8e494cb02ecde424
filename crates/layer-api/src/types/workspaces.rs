//! Workspaces (models.py `WorkspaceInfo`, `ListWorkspacesOutput`).

use serde::{Deserialize, Serialize};

use super::Timestamp;
use crate::ids::WorkspaceId;
use crate::pagination::{Cursor, PageLimit, Pagination};

/// A workspace the caller belongs to, with its Creative Unit balance.
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
pub struct WorkspaceInfo {
    /// The workspace's id.
    pub workspace_id: WorkspaceId,
    /// Its representation in app URLs.
    pub slug: String,
    /// Display name.
    pub name: String,
    /// Total balance before reservations.
    pub balance_creative_units: f64,
    /// Reserved by in-progress runs.
    pub reserved_creative_units: f64,
    /// Balance minus reserved. Can be negative.
    pub available_creative_units: f64,
    /// When the caller was last active in it.
    #[serde(default)]
    pub last_active_at: Option<Timestamp>,
}

/// `GET /workspaces` query.
#[derive(Clone, PartialEq, Debug, Default)]
pub struct ListWorkspacesQuery {
    /// Page size (server default 20).
    pub limit: Option<PageLimit>,
    /// Where to continue.
    pub cursor: Option<Cursor>,
}

#[derive(Deserialize)]
pub(crate) struct ListWorkspacesOutput {
    pub workspaces: Vec<WorkspaceInfo>,
    pub pagination: Pagination,
}

/// `GET /workspaces/{id}` answers with the workspace itself (layer-api.md); a wrapped
/// `{"workspace": …}` is accepted too, since models.py names no output type for it.
#[derive(Deserialize)]
#[serde(untagged)]
pub(crate) enum GetWorkspaceOutput {
    Wrapped { workspace: WorkspaceInfo },
    Bare(WorkspaceInfo),
}

impl GetWorkspaceOutput {
    pub(crate) fn into_inner(self) -> WorkspaceInfo {
        match self {
            Self::Wrapped { workspace } | Self::Bare(workspace) => workspace,
        }
    }
}
