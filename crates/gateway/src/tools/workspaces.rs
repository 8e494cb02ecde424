//! `list_workspaces`, `get_workspace`.

use layer_api::{ListWorkspacesQuery, WorkspaceId};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

use super::args::{self, cursor, integer, non_blank, page_limit};
use super::schema::{array, nullable, number, open_object, pagination_properties, string, uuid};
use super::{Behaviour, Tool, ToolContext, ToolResult, page, success, to_json};
use crate::errors::Subject;
use crate::upstream::CallKind;

/// The schema of a workspace record.
pub fn workspace_schema() -> Value {
    open_object(
        vec![
            (
                "workspace_id",
                uuid("Pass as workspace_id to every other tool."),
            ),
            ("slug", string("URL name of the workspace.")),
            ("name", string("Display name.")),
            (
                "balance_creative_units",
                number("Total Creative Unit balance.", None, None),
            ),
            (
                "reserved_creative_units",
                number("Creative Units reserved by runs in progress.", None, None),
            ),
            (
                "available_creative_units",
                number(
                    "What can be spent now: balance minus reserved. May be negative.",
                    None,
                    None,
                ),
            ),
            (
                "last_active_at",
                nullable(
                    json!({"type": "string", "format": "date-time", "description": "Last activity."}),
                ),
            ),
        ],
        &[
            "workspace_id",
            "name",
            "balance_creative_units",
            "reserved_creative_units",
            "available_creative_units",
        ],
    )
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListWorkspaces {
    /// Workspaces per page.
    #[serde(default, deserialize_with = "integer")]
    #[schemars(range(min = 1, max = 100), extend("default" = 20))]
    limit: Option<i64>,
    /// next_cursor from the previous page.
    #[serde(default, deserialize_with = "non_blank")]
    cursor: Option<String>,
}

impl Tool for ListWorkspaces {
    const NAME: &'static str = "list_workspaces";
    const TITLE: &'static str = "List workspaces";
    const DESCRIPTION: &'static str = "Lists the Layer workspaces the user belongs to, with each one's Creative Unit balance (balance, reserved by running generations, available). Start here: every other tool needs a workspace_id from this list. If the user has several, ask which to use (or pick the one they named). Paginated: pass next_cursor back as cursor while has_more_results is true.";
    const BEHAVIOUR: Behaviour = Behaviour::ReadOnly;

    fn output() -> Value {
        let mut props = vec![(
            "workspaces",
            array("The workspaces on this page.", workspace_schema(), None),
        )];
        props.extend(pagination_properties());
        open_object(props, &["workspaces", "has_more_results"])
    }

    async fn call(self, ctx: &ToolContext) -> ToolResult {
        let query = ListWorkspacesQuery {
            limit: page_limit(self.limit)?,
            cursor: cursor(self.cursor)?,
        };
        let listed = ctx
            .read(None, CallKind::Read, Subject::Other, |layer| async move {
                layer.list_workspaces(&query).await
            })
            .await?;
        Ok(success(page("workspaces", &listed)?, vec![]))
    }
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GetWorkspace {
    /// The workspace, from list_workspaces.
    #[schemars(schema_with = "args::uuid")]
    workspace_id: WorkspaceId,
}

impl Tool for GetWorkspace {
    const NAME: &'static str = "get_workspace";
    const TITLE: &'static str = "Get a workspace";
    const DESCRIPTION: &'static str = "Returns one workspace with its current Creative Unit balance: balance_creative_units, reserved_creative_units (held by runs in progress) and available_creative_units (what can be spent now). Use it to check the balance before and after spending.";
    const BEHAVIOUR: Behaviour = Behaviour::ReadOnly;

    fn output() -> Value {
        workspace_schema()
    }

    async fn call(self, ctx: &ToolContext) -> ToolResult {
        let workspace = self.workspace_id;
        let info = ctx
            .read(
                Some(workspace),
                CallKind::Read,
                Subject::Workspace,
                |layer| async move { layer.get_workspace(workspace).await },
            )
            .await?;
        Ok(success(to_json(&info)?, vec![]))
    }
}
