//! The MCP server handler: server info and instructions, the tool list, and tool calls.
//!
//! rmcp's service factory builds one handler per session (or per stateless request); the
//! handler is a cheap clone of an `Arc` holding the catalogue and the shared clients.

use std::sync::Arc;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CompleteRequestMethod, CompleteRequestParams,
    CompleteResult, Implementation, InitializeResult, ListPromptsRequestMethod, ListPromptsResult,
    ListResourceTemplatesRequestMethod, ListResourceTemplatesResult, ListResourcesRequestMethod,
    ListResourcesResult, ListToolsResult, MetaObject, PaginatedRequestParams, ProtocolVersion,
    ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::{RequestContext, RoleServer};
use rmcp::{ErrorData as McpError, ServerHandler};

use crate::auth::Caller;
use crate::cancel::Cancellation;
use crate::errors::{Code, ToolError};
use crate::http::trace::request_id_of;
use crate::tools::{Behaviour, Catalogue, FileFetcher, ToolContext};
use crate::upstream::Upstream;

/// What every handler shares.
pub struct Shared {
    pub catalogue: Catalogue,
    pub upstream: Upstream,
    pub fetcher: Arc<dyn FileFetcher>,
    pub instructions: String,
}

/// The MCP handler.
#[derive(Clone)]
pub struct LayerMcp {
    shared: Arc<Shared>,
}

impl LayerMcp {
    pub fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    fn server_info() -> Implementation {
        let mut info = Implementation::new("layer-mcp-gateway", env!("CARGO_PKG_VERSION"));
        info.title = Some("Layer".to_owned());
        info.description =
            Some("Layer's image, video, 3D and audio generation for AI agents.".to_owned());
        info.website_url = Some("https://layer.ai".to_owned());
        info
    }

    /// 2026-07-28 has no `initialize` to name the server, so its results SHOULD say who
    /// answered in `_meta` (`server/discover` gets it from rmcp). Older revisions: untouched.
    fn stamp_server_info(meta: &mut Option<MetaObject>, context: &RequestContext<RoleServer>) {
        let stateless = context
            .protocol_version()
            // ISO dates compare as text.
            .is_some_and(|v| v.as_str() >= ProtocolVersion::V_2026_07_28.as_str());
        if !stateless {
            return;
        }
        match serde_json::to_value(Self::server_info()) {
            Ok(info) => {
                meta.get_or_insert_default()
                    .0
                    .insert(SERVER_INFO_META_KEY.to_owned(), info);
            }
            Err(error) => tracing::error!(%error, "could not serialise the server info"),
        }
    }
}

/// Where a 2026-07-28 result names the server.
const SERVER_INFO_META_KEY: &str = "io.modelcontextprotocol/serverInfo";

impl ServerHandler for LayerMcp {
    fn get_info(&self) -> ServerConfig {
        let capabilities = ServerCapabilities::builder().enable_tools().build();
        InitializeResult::new(capabilities)
            .with_server_info(Self::server_info())
            .with_instructions(self.shared.instructions.clone())
    }

    async fn list_tools(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        // The list is one page, so we never hand out a cursor: any cursor is invalid
        // (the spec's -32602), rather than silently restarting from the first page.
        if request.as_ref().is_some_and(|r| r.cursor.is_some()) {
            return Err(McpError::invalid_params(
                "Invalid cursor: tools/list has a single page; call it without a cursor",
                None,
            ));
        }
        let mut result = ListToolsResult::with_all_items(self.shared.catalogue.tools().to_vec());
        Self::stamp_server_info(&mut result.meta, &context);
        Ok(result)
    }

    // Prompts, resources and completions are not declared in the capabilities, so their
    // methods do not exist here: rmcp's defaults would answer the lists with empty results
    // while `prompts/get` and `resources/read` say -32601. Every one of them says -32601.
    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, McpError> {
        Err(McpError::method_not_found::<ListPromptsRequestMethod>())
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, McpError> {
        Err(McpError::method_not_found::<ListResourcesRequestMethod>())
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, McpError> {
        Err(McpError::method_not_found::<
            ListResourceTemplatesRequestMethod,
        >())
    }

    async fn complete(
        &self,
        _request: CompleteRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CompleteResult, McpError> {
        Err(McpError::method_not_found::<CompleteRequestMethod>())
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        self.shared.catalogue.tool(name).cloned()
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let name = request.name.to_string();
        let request_id = context
            .extensions
            .get::<http::request::Parts>()
            .and_then(|parts| request_id_of(&parts.headers));
        let Some(entry) = self.shared.catalogue.entry(&name) else {
            // An unknown tool is a protocol error (the spec's -32602), not a tool result.
            let shown: String = name.chars().take(64).collect();
            return Err(McpError::invalid_params(
                format!(
                    "Unknown tool {shown:?}. Available tools: {}",
                    self.shared.catalogue.names().join(", ")
                ),
                None,
            ));
        };
        let Some(caller) = Caller::from_context(&context) else {
            tracing::error!("tool call without an authenticated caller");
            let error = ToolError::new(Code::Unauthenticated, "No credential reached the tool. Reconnect with `Authorization: Bearer <Layer Personal Access Token>`.")
                .or_request_id(request_id.as_deref());
            let mut result = error.into_result();
            Self::stamp_server_info(&mut result.meta, &context);
            return Ok(result.into());
        };
        let ctx = ToolContext {
            caller,
            upstream: self.shared.upstream.clone(),
            fetcher: self.shared.fetcher.clone(),
            request_id: request_id.clone(),
            cancel: Cancellation::of(&context),
        };
        let started = std::time::Instant::now();
        let read_only = entry.behaviour == Behaviour::ReadOnly;
        let call = entry.call(request.arguments, &ctx);
        // rmcp only cancels the request's token; the handler must stop itself. A read the
        // client cancelled is dropped at once (freeing its call place); a write stops only
        // while it waits for a place (once Layer has it, the outcome must be recorded).
        let outcome = if read_only {
            tokio::select! {
                outcome = call => outcome,
                _ = ctx.cancel.requested() => {
                    tracing::info!(tool = %name, user = %ctx.caller.user(), "tool call cancelled by the client");
                    Err(crate::caps::refusal::abandoned())
                }
            }
        } else {
            call.await
        };
        let mut result = match outcome {
            Ok(result) => {
                tracing::info!(tool = %name, user = %ctx.caller.user(), elapsed_ms = started.elapsed().as_millis() as u64, "tool call succeeded");
                result
            }
            Err(error) => {
                tracing::info!(tool = %name, user = %ctx.caller.user(), code = %error.code, elapsed_ms = started.elapsed().as_millis() as u64, "tool call failed");
                ctx.upstream.observe_failure(&ctx.caller, &error).await;
                error.or_request_id(request_id.as_deref()).into_result()
            }
        };
        Self::stamp_server_info(&mut result.meta, &context);
        Ok(result.into())
    }
}
