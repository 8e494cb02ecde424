//! `layer-mcp-gateway demo`: the simulator in-process and a gateway in front of it.

/// Runs the demo until Ctrl-C.
pub async fn run(_listen: &str) -> anyhow::Result<()> {
    anyhow::bail!("the demo needs the simulator, which is not built into this binary yet")
}
