//! The catalogue of the 18 Layer tools and their handlers, one module per group.
//!
//! Each tool is a [`ToolSpec`] (name, description, input schema, output schema, annotations)
//! plus a handler `async fn(&ToolContext, Args) -> Result<CallToolResult, ToolError>`.
//! [`call`] validates nothing itself: handlers read their [`Args`], which refuse bad input
//! before any upstream call.

pub mod args;
pub mod files;
pub mod forge;
pub mod instructions;
pub mod models;
pub mod runs;
pub mod schema;
pub mod validate;
pub mod workflows;
pub mod workspaces;

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use rmcp::model::{CallToolResult, ContentBlock, JsonObject, Tool, ToolAnnotations};
use serde_json::Value;

pub use args::Args;
pub use files::{FetchError, FetchedFile, FileFetcher};

use crate::auth::Caller;
use crate::errors::ToolError;
use crate::upstream::Upstream;

/// What a handler works with.
pub struct ToolContext {
    pub caller: Caller,
    pub upstream: Upstream,
    pub fetcher: Arc<dyn FileFetcher>,
    /// The gateway's id for the HTTP request, quoted in errors when Layer gave none.
    pub request_id: Option<String>,
}

/// How a tool behaves, for clients deciding whether to ask the user first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// Reads only: instructions, list, get, estimate.
    ReadOnly,
    /// Changes state; may be repeated with the same effect when `idempotent`.
    Writes {
        destructive: bool,
        idempotent: bool,
        open_world: bool,
    },
}

/// One tool's description.
#[derive(Debug, Clone)]
pub struct ToolSpec {
    pub name: &'static str,
    pub title: &'static str,
    pub description: String,
    pub input: Value,
    /// The success shape; the published output schema also admits the error shape.
    pub output: Value,
    pub behaviour: Behaviour,
}

impl ToolSpec {
    /// The argument names the input schema lists.
    pub fn argument_names(&self) -> Vec<&str> {
        self.input
            .get("properties")
            .and_then(Value::as_object)
            .map(|p| p.keys().map(String::as_str).collect())
            .unwrap_or_default()
    }

    fn to_tool(&self) -> Tool {
        let input: JsonObject = self.input.as_object().cloned().unwrap_or_default();
        let output: JsonObject = schema::output(self.output.clone())
            .as_object()
            .cloned()
            .unwrap_or_default();
        let annotations = match self.behaviour {
            Behaviour::ReadOnly => ToolAnnotations::with_title(self.title)
                .read_only(true)
                .destructive(false)
                .idempotent(true)
                .open_world(false),
            Behaviour::Writes {
                destructive,
                idempotent,
                open_world,
            } => ToolAnnotations::with_title(self.title)
                .read_only(false)
                .destructive(destructive)
                .idempotent(idempotent)
                .open_world(open_world),
        };
        Tool::new(
            Cow::Borrowed(self.name),
            self.description.clone(),
            Arc::new(input),
        )
        .with_title(self.title)
        .with_raw_output_schema(Arc::new(output))
        .with_annotations(annotations)
    }
}

/// The tool list, built once.
pub struct Catalogue {
    specs: Vec<ToolSpec>,
    tools: Vec<Tool>,
    index: HashMap<&'static str, usize>,
}

impl Catalogue {
    pub fn new() -> Self {
        let mut specs = Vec::new();
        specs.extend(instructions::specs());
        specs.extend(workspaces::specs());
        specs.extend(models::specs());
        specs.extend(workflows::specs());
        specs.extend(forge::specs());
        specs.extend(files::specs());
        let tools = specs.iter().map(ToolSpec::to_tool).collect();
        let index = specs.iter().enumerate().map(|(i, s)| (s.name, i)).collect();
        Self {
            specs,
            tools,
            index,
        }
    }

    pub fn tools(&self) -> &[Tool] {
        &self.tools
    }

    pub fn specs(&self) -> &[ToolSpec] {
        &self.specs
    }

    pub fn spec(&self, name: &str) -> Option<&ToolSpec> {
        self.index.get(name).map(|&i| &self.specs[i])
    }

    pub fn tool(&self, name: &str) -> Option<&Tool> {
        self.index.get(name).map(|&i| &self.tools[i])
    }

    pub fn names(&self) -> Vec<&'static str> {
        self.specs.iter().map(|s| s.name).collect()
    }
}

impl Default for Catalogue {
    fn default() -> Self {
        Self::new()
    }
}

/// Runs a known tool. `None` when the name is not one of ours.
pub async fn call(
    catalogue: &Catalogue,
    name: &str,
    arguments: Option<JsonObject>,
    ctx: &ToolContext,
) -> Option<Result<CallToolResult, ToolError>> {
    let spec = catalogue.spec(name)?;
    let arguments = arguments.unwrap_or_default();
    if let Err(e) = validate::validate(&spec.input, &arguments) {
        return Some(Err(e));
    }
    let args = match Args::parse(Some(arguments), &spec.argument_names()) {
        Ok(args) => args,
        Err(e) => return Some(Err(e)),
    };
    let result = match name {
        "get_instructions" => instructions::get_instructions(ctx, args).await,
        "get_workflow_instructions" => instructions::get_workflow_instructions(ctx, args).await,
        "get_forge_instructions" => instructions::get_forge_instructions(ctx, args).await,
        "list_workspaces" => workspaces::list_workspaces(ctx, args).await,
        "get_workspace" => workspaces::get_workspace(ctx, args).await,
        "get_model_recommendations" => models::get_model_recommendations(ctx, args).await,
        "list_models" => models::list_models(ctx, args).await,
        "get_model" => models::get_model(ctx, args).await,
        "list_workflows" => workflows::list_workflows(ctx, args).await,
        "estimate_workflow_price" => workflows::estimate_workflow_price(ctx, args).await,
        "execute_workflow" => workflows::execute_workflow(ctx, args).await,
        "get_workflow_run" => workflows::get_workflow_run(ctx, args).await,
        "cancel_workflow_run" => workflows::cancel_workflow_run(ctx, args).await,
        "estimate_forge_price" => forge::estimate_forge_price(ctx, args).await,
        "execute_forge" => forge::execute_forge(ctx, args).await,
        "get_forge_run" => forge::get_forge_run(ctx, args).await,
        "request_file_upload_url" => files::request_file_upload_url(ctx, args).await,
        "upload_file" => files::upload_file(ctx, args).await,
        _ => return None,
    };
    Some(result)
}

/// A success result: the structured record, and the same as JSON text for clients that
/// only read text (the spec's backwards-compatibility advice), after any extra blocks.
pub fn success(structured: Value, mut blocks: Vec<ContentBlock>) -> CallToolResult {
    blocks.push(ContentBlock::text(structured.to_string()));
    let mut result = CallToolResult::success(blocks);
    result.structured_content = Some(structured);
    result
}

/// Serialises an upstream record for structured content.
pub fn to_json<T: serde::Serialize>(value: &T) -> Result<Value, ToolError> {
    serde_json::to_value(value).map_err(|e| {
        tracing::error!(error = %e, "could not serialise an upstream record");
        ToolError::new(
            crate::errors::Code::Internal,
            "The gateway could not encode Layer's answer. Retry once.",
        )
    })
}
