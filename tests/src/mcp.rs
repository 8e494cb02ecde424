//! A small Rust MCP client (rmcp, streamable HTTP) for scripted calls in tests.

use rmcp::model::{CallToolRequestParams, CallToolResult};
use rmcp::service::RunningService;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{RoleClient, ServiceExt};
use serde_json::Value;

pub type McpClient = RunningService<RoleClient, ()>;

/// Connects (initialize + initialized) to `url` with `Authorization: Bearer <token>`.
pub async fn connect(url: &str, bearer: &str) -> anyhow::Result<McpClient> {
    let mut config = StreamableHttpClientTransportConfig::with_uri(url.to_owned());
    config.auth_header = Some(bearer.to_owned());
    let transport = StreamableHttpClientTransport::from_config(config);
    Ok(().serve(transport).await?)
}

/// Calls a tool with JSON arguments (an object).
pub async fn call(
    client: &McpClient,
    tool: &str,
    arguments: Value,
) -> anyhow::Result<CallToolResult> {
    let mut params = CallToolRequestParams::new(tool.to_owned());
    if let Value::Object(map) = arguments {
        params = params.with_arguments(map);
    }
    Ok(client.call_tool(params).await?)
}

/// The structured content of a tool result, or its first text block parsed as JSON.
pub fn structured(result: &CallToolResult) -> Value {
    if let Some(value) = &result.structured_content {
        return value.clone();
    }
    result
        .content
        .iter()
        .find_map(|c| c.as_text().map(|t| t.text.clone()))
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(Value::Null)
}
