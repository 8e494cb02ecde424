//! `list_workspaces`, `get_workspace`.

use layer_api::{Cursor, ListWorkspacesQuery, PageLimit, WorkspaceId};
use rmcp::model::CallToolResult;
use serde_json::{Value, json};

use super::schema::{
    array, integer, nullable, number, object, open_object, pagination_properties, string, uuid,
};
use super::{Args, Behaviour, ToolContext, ToolSpec, success, to_json};
use crate::errors::{Subject, ToolError};
use crate::upstream::{CallKind, Outcome};

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

pub fn specs() -> Vec<ToolSpec> {
    let mut list_props = vec![(
        "workspaces",
        array("The workspaces on this page.", workspace_schema(), None),
    )];
    list_props.extend(pagination_properties());
    vec![
        ToolSpec {
            name: "list_workspaces",
            title: "List workspaces",
            description: "Lists the Layer workspaces the user belongs to, with each one's Creative Unit balance (balance, reserved by running generations, available). Start here: every other tool needs a workspace_id from this list. If the user has several, ask which to use (or pick the one they named). Paginated: pass next_cursor back as cursor while has_more_results is true.".to_owned(),
            input: object(
                vec![
                    ("limit", integer("Workspaces per page.", 1, Some(100), Some(20))),
                    ("cursor", string("next_cursor from the previous page.")),
                ],
                &[],
            ),
            output: open_object(list_props, &["workspaces", "has_more_results"]),
            behaviour: Behaviour::ReadOnly,
        },
        ToolSpec {
            name: "get_workspace",
            title: "Get a workspace",
            description: "Returns one workspace with its current Creative Unit balance: balance_creative_units, reserved_creative_units (held by runs in progress) and available_creative_units (what can be spent now). Use it to check the balance before and after spending.".to_owned(),
            input: object(vec![("workspace_id", uuid("The workspace, from list_workspaces."))], &["workspace_id"]),
            output: workspace_schema(),
            behaviour: Behaviour::ReadOnly,
        },
    ]
}

pub(crate) fn page_limit(args: &Args) -> Result<Option<PageLimit>, ToolError> {
    args.opt_int("limit", 1, 100)?
        .map(|n| {
            PageLimit::new(u32::try_from(n).unwrap_or(100))
                .map_err(|e| ToolError::invalid(format!("`limit`: {e}")))
        })
        .transpose()
}

pub(crate) fn cursor(args: &Args) -> Result<Option<Cursor>, ToolError> {
    Ok(args.opt_string("cursor", 4096)?.map(Cursor::new))
}

pub async fn list_workspaces(ctx: &ToolContext, args: Args) -> Result<CallToolResult, ToolError> {
    let query = ListWorkspacesQuery {
        limit: page_limit(&args)?,
        cursor: cursor(&args)?,
    };
    let page = ctx
        .upstream
        .unscoped(&ctx.caller)
        .list_workspaces(&query)
        .await
        .map_err(|e| ToolError::from_layer(&e, Subject::Other))?;
    let structured = json!({
        "workspaces": to_json(&page.items)?,
        "next_cursor": page.next_cursor().map(|c| c.as_str().to_owned()),
        "has_more_results": page.pagination.has_more_results,
        "total_count": page.pagination.total_count,
    });
    Ok(success(structured, vec![]))
}

pub async fn get_workspace(ctx: &ToolContext, args: Args) -> Result<CallToolResult, ToolError> {
    let workspace: WorkspaceId = args.id("workspace_id")?;
    let admission = ctx
        .upstream
        .admit(&ctx.caller, workspace, CallKind::Read)
        .await?;
    let result = admission.client().get_workspace(workspace).await;
    admission.settle(if result.is_ok() {
        Outcome::Done
    } else {
        Outcome::Failed
    });
    let info = result.map_err(|e| ToolError::from_layer(&e, Subject::Workspace))?;
    Ok(success(to_json(&info)?, vec![]))
}
