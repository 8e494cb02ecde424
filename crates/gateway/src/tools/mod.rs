//! The catalogue of the 18 Layer tools and their handlers, one module per group.
//!
//! A tool is declared once: its argument struct (whose fields, derived with `schemars`, are
//! the published input schema) implements [`Tool`], which carries the name, title,
//! description, output schema, behaviour and the handler. [`Catalogue::new`] lists the
//! declarations and compiles each input schema into a validator, so what is accepted is
//! exactly what `tools/list` publishes. Handlers reach Layer only through
//! [`ToolContext::read`] and [`ToolContext::run`], which admit, settle and map errors.

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
use std::future::Future;
use std::sync::Arc;

use futures::future::BoxFuture;
use layer_api::{AuthedClient, IdempotencyKey, WorkspaceId};
use limiter::RunRef;
use rmcp::model::{CallToolResult, ContentBlock, JsonObject, ToolAnnotations};
use serde::de::DeserializeOwned;
use serde_json::Value;

pub use files::{FetchError, FetchedFile, FileFetcher};

use crate::auth::Caller;
use crate::cancel::Cancellation;
use crate::errors::{Subject, ToolError};
use crate::upstream::{CallKind, Outcome, Upstream};
use validate::ArgumentCheck;

/// What a handler works with.
pub struct ToolContext {
    pub caller: Caller,
    pub upstream: Upstream,
    pub fetcher: Arc<dyn FileFetcher>,
    /// The gateway's id for the HTTP request, quoted in errors when Layer gave none.
    pub request_id: Option<String>,
    /// Fires when the client cancels the call or goes away (a queued call gives up).
    pub cancel: Cancellation,
}

impl ToolContext {
    /// A call to Layer that starts nothing: admitted in `workspace` (the user's own place
    /// when `None`), settled as done or failed, Layer's error mapped for `subject`.
    pub async fn read<'a, T, Fut>(
        &'a self,
        workspace: Option<WorkspaceId>,
        kind: CallKind,
        subject: Subject,
        call: impl FnOnce(AuthedClient<'a>) -> Fut,
    ) -> Result<T, ToolError>
    where
        Fut: Future<Output = Result<T, layer_api::Error>>,
    {
        self.read_settling(workspace, kind, subject, call, |result| {
            if result.is_ok() {
                Outcome::Done
            } else {
                Outcome::Failed
            }
        })
        .await
    }

    /// [`Self::read`] for calls that see a run (polls, cancels): `outcome` tells the caps
    /// what the answer says about it.
    pub async fn read_settling<'a, T, Fut>(
        &'a self,
        workspace: Option<WorkspaceId>,
        kind: CallKind,
        subject: Subject,
        call: impl FnOnce(AuthedClient<'a>) -> Fut,
        outcome: impl FnOnce(&Result<T, layer_api::Error>) -> Outcome,
    ) -> Result<T, ToolError>
    where
        Fut: Future<Output = Result<T, layer_api::Error>>,
    {
        let admission = match workspace {
            Some(workspace) => {
                self.upstream
                    .admit(&self.caller, workspace, kind, &self.cancel)
                    .await?
            }
            None => {
                self.upstream
                    .admit_unscoped(&self.caller, &self.cancel)
                    .await?
            }
        };
        let result = call(admission.client()).await;
        admission.settle(outcome(&result)).await;
        result.map_err(|e| ToolError::from_layer(&e, subject))
    }

    /// An execute: admitted with a run place in `workspace`, sent with `key` (so a retry
    /// finds the run already started), and settled with Layer's answer (`run` names the run
    /// it started; see [`crate::upstream::Admission::start_run`]).
    pub async fn run<'a, T, Fut>(
        &'a self,
        workspace: WorkspaceId,
        key: Option<IdempotencyKey>,
        subject: Subject,
        call: impl FnOnce(AuthedClient<'a>) -> Fut,
        run: impl FnOnce(&T) -> RunRef,
    ) -> Result<T, ToolError>
    where
        Fut: Future<Output = Result<T, layer_api::Error>>,
    {
        let admission = self
            .upstream
            .admit(&self.caller, workspace, CallKind::StartRun, &self.cancel)
            .await?
            .with_idempotency_key(key);
        let result = call(admission.client()).await;
        admission.start_run(result, run, subject).await
    }
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

impl Behaviour {
    /// Makes something new in Layer on each call (an upload slot, a run): nothing is
    /// overwritten, and a repeat makes another.
    pub const CREATES: Behaviour = Behaviour::Writes {
        destructive: false,
        idempotent: false,
        open_world: false,
    };
}

/// One tool, declared on its argument struct: the struct's fields (with their doc comments,
/// bounds and `deny_unknown_fields`) are the input schema; the rest is here.
pub trait Tool: DeserializeOwned + schemars::JsonSchema + Send + 'static {
    const NAME: &'static str;
    const TITLE: &'static str;
    const DESCRIPTION: &'static str;
    const BEHAVIOUR: Behaviour;
    /// The success shape; the published output schema also admits the error shape.
    fn output() -> Value;
    /// Runs the call with arguments already checked against the input schema.
    fn call(self, ctx: &ToolContext) -> impl Future<Output = ToolResult> + Send;
}

pub type ToolResult = Result<CallToolResult, ToolError>;

type Handler = for<'a> fn(&'a ToolContext, JsonObject) -> BoxFuture<'a, ToolResult>;

fn handle<T: Tool>(ctx: &ToolContext, arguments: JsonObject) -> BoxFuture<'_, ToolResult> {
    Box::pin(async move { args::read::<T>(arguments)?.call(ctx).await })
}

/// A declared tool, ready to list and call.
pub struct Entry {
    pub name: &'static str,
    pub behaviour: Behaviour,
    /// The input schema, as published.
    pub input: Value,
    tool: rmcp::model::Tool,
    arguments: ArgumentCheck,
    handler: Handler,
}

impl Entry {
    fn declare<T: Tool>() -> Result<Self, CatalogueError> {
        let input = schema::input::<T>();
        let arguments = ArgumentCheck::new(&input).map_err(|reason| CatalogueError {
            tool: T::NAME,
            reason,
        })?;
        let annotations = match T::BEHAVIOUR {
            Behaviour::ReadOnly => ToolAnnotations::with_title(T::TITLE)
                .read_only(true)
                .destructive(false)
                .idempotent(true)
                .open_world(false),
            Behaviour::Writes {
                destructive,
                idempotent,
                open_world,
            } => ToolAnnotations::with_title(T::TITLE)
                .read_only(false)
                .destructive(destructive)
                .idempotent(idempotent)
                .open_world(open_world),
        };
        let object = |v: Value| match v {
            Value::Object(map) => map,
            _ => JsonObject::new(),
        };
        let tool = rmcp::model::Tool::new(
            Cow::Borrowed(T::NAME),
            T::DESCRIPTION,
            Arc::new(object(input.clone())),
        )
        .with_title(T::TITLE)
        .with_raw_output_schema(Arc::new(object(schema::output(T::output()))))
        .with_annotations(annotations);
        Ok(Self {
            name: T::NAME,
            behaviour: T::BEHAVIOUR,
            input,
            tool,
            arguments,
            handler: handle::<T>,
        })
    }

    /// Checks the arguments against the input schema, then runs the handler.
    pub fn call<'a>(
        &self,
        arguments: Option<JsonObject>,
        ctx: &'a ToolContext,
    ) -> BoxFuture<'a, ToolResult> {
        match self.check(arguments.unwrap_or_default()) {
            Ok(arguments) => (self.handler)(ctx, arguments),
            Err(error) => Box::pin(std::future::ready(Err(error))),
        }
    }

    /// The arguments, if the input schema admits them (`null` values dropped as absent).
    pub fn check(&self, arguments: JsonObject) -> Result<JsonObject, ToolError> {
        self.arguments.check(arguments)
    }

    /// The tool as `tools/list` publishes it.
    pub fn tool(&self) -> &rmcp::model::Tool {
        &self.tool
    }
}

/// A declaration whose input schema does not compile (a bug caught at start).
#[derive(Debug, thiserror::Error)]
#[error("the input schema of tool {tool} is not a valid JSON Schema: {reason}")]
pub struct CatalogueError {
    tool: &'static str,
    reason: String,
}

/// The tool list, built once.
pub struct Catalogue {
    entries: Vec<Entry>,
    tools: Vec<rmcp::model::Tool>,
    index: HashMap<&'static str, usize>,
}

impl Catalogue {
    pub fn new() -> Result<Self, CatalogueError> {
        use files::{RequestFileUploadUrl, UploadFile};
        use forge::{EstimateForgePrice, ExecuteForge, GetForgeRun};
        use instructions::{GetForgeInstructions, GetInstructions, GetWorkflowInstructions};
        use models::{GetModel, GetModelRecommendations, ListModels};
        use workflows::{
            CancelWorkflowRun, EstimateWorkflowPrice, ExecuteWorkflow, GetWorkflowRun,
            ListWorkflows,
        };
        use workspaces::{GetWorkspace, ListWorkspaces};
        let entries = vec![
            Entry::declare::<GetInstructions>()?,
            Entry::declare::<GetWorkflowInstructions>()?,
            Entry::declare::<GetForgeInstructions>()?,
            Entry::declare::<ListWorkspaces>()?,
            Entry::declare::<GetWorkspace>()?,
            Entry::declare::<GetModelRecommendations>()?,
            Entry::declare::<ListModels>()?,
            Entry::declare::<GetModel>()?,
            Entry::declare::<ListWorkflows>()?,
            Entry::declare::<EstimateWorkflowPrice>()?,
            Entry::declare::<ExecuteWorkflow>()?,
            Entry::declare::<GetWorkflowRun>()?,
            Entry::declare::<CancelWorkflowRun>()?,
            Entry::declare::<EstimateForgePrice>()?,
            Entry::declare::<ExecuteForge>()?,
            Entry::declare::<GetForgeRun>()?,
            Entry::declare::<RequestFileUploadUrl>()?,
            Entry::declare::<UploadFile>()?,
        ];
        let tools = entries.iter().map(|e| e.tool.clone()).collect();
        let index = entries
            .iter()
            .enumerate()
            .map(|(i, e)| (e.name, i))
            .collect();
        Ok(Self {
            entries,
            tools,
            index,
        })
    }

    pub fn tools(&self) -> &[rmcp::model::Tool] {
        &self.tools
    }

    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    pub fn entry(&self, name: &str) -> Option<&Entry> {
        self.index.get(name).map(|&i| &self.entries[i])
    }

    pub fn tool(&self, name: &str) -> Option<&rmcp::model::Tool> {
        self.index.get(name).map(|&i| &self.tools[i])
    }

    pub fn names(&self) -> Vec<&'static str> {
        self.entries.iter().map(|e| e.name).collect()
    }
}

/// A success result: the structured record, and the same as JSON text for clients that
/// only read text (the spec's backwards-compatibility advice), after any extra blocks.
pub fn success(structured: Value, mut blocks: Vec<ContentBlock>) -> CallToolResult {
    blocks.push(ContentBlock::text(structured.to_string()));
    let mut result = CallToolResult::success(blocks);
    result.structured_content = Some(structured);
    result
}

/// A page of a listing as structured content: the items under `key`, and the pagination
/// fields ([`schema::pagination_properties`]).
pub fn page<T: serde::Serialize>(key: &str, page: &layer_api::Page<T>) -> Result<Value, ToolError> {
    Ok(serde_json::json!({
        key: to_json(&page.items)?,
        "next_cursor": page.next_cursor().map(|c| c.as_str().to_owned()),
        "has_more_results": page.pagination.has_more_results,
        "total_count": page.pagination.total_count,
    }))
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
