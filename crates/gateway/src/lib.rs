//! The hosted MCP gateway for Layer.
