// A client of the scale-out tests (tests/tests/cluster.rs), with the official TypeScript MCP
// SDK over streamable HTTP, as an agent would use a gateway behind a load balancer.
//
// Env: MCP_URL, BEARER (a PAT or an OAuth access token), WORKSPACE_ID, MODEL_ID, and MODE:
// - "calls": initialize, list the tools, then CALLS (default 12) tool calls, one at a time;
// - "runs": RUNS (default 4) forge runs one after the other, each executed with its own
//   idempotency key and polled until it is finished;
// - "loop": tool calls (CONCURRENCY at a time, default 2) until stdin ends.
// RETRIES (default 0) is how many calls in all may be retried once, with the very same
// arguments (an execute keeps its idempotency key, so a retry cannot start a second run),
// after a transport failure; a tool error is never retried. CALL_TIMEOUT_MS (default 30000).
//
// Prints one JSON line per event ({"event": "call" | "retry" | "run_started" | "run_done"
// | "failure" | "done", ...}); the last is "done" with the totals. Exits 0 even when calls
// failed: the test decides from the totals.
const { Client } = require("@modelcontextprotocol/sdk/client/index.js");
const { StreamableHTTPClientTransport } = require("@modelcontextprotocol/sdk/client/streamableHttp.js");

const env = process.env;
const mode = env.MODE || "calls";
const workspace = env.WORKSPACE_ID;
const model = env.MODEL_ID;
const timeout = Number(env.CALL_TIMEOUT_MS || "30000");
let retriesLeft = Number(env.RETRIES || "0");
const totals = { calls: 0, ok: 0, tool_errors: 0, failures: 0, retries: 0, runs: [] };

const emit = (event) => process.stdout.write(JSON.stringify(event) + "\n");
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function call(client, name, args) {
  for (;;) {
    const started = Date.now();
    totals.calls += 1;
    try {
      const result = await client.callTool({ name, arguments: args }, undefined, { timeout });
      const ms = Date.now() - started;
      if (result.isError) {
        totals.tool_errors += 1;
        emit({ event: "call", tool: name, ok: false, ms, error: result.structuredContent || result.content });
      } else {
        totals.ok += 1;
        emit({ event: "call", tool: name, ok: true, ms });
      }
      return result;
    } catch (error) {
      const ms = Date.now() - started;
      if (retriesLeft > 0) {
        retriesLeft -= 1;
        totals.retries += 1;
        emit({ event: "retry", tool: name, ms, error: String(error) });
        continue;
      }
      totals.failures += 1;
      emit({ event: "failure", tool: name, ms, error: String(error) });
      return null;
    }
  }
}

async function runs(client, count) {
  for (let i = 0; i < count; i++) {
    const key = `cluster-${process.pid}-${Date.now()}-${i}`;
    const args = { workspace_id: workspace, model_id: model, prompt: `a lighthouse, take ${i}`, batch_size: 1, idempotency_key: key };
    const started = await call(client, "execute_forge", args);
    if (!started || started.isError) continue;
    const id = started.structuredContent.inference_id;
    emit({ event: "run_started", id, key });
    let status = "unknown";
    for (let p = 0; p < 600; p++) {
      await sleep(250);
      const polled = await call(client, "get_forge_run", { workspace_id: workspace, inference_id: id });
      if (!polled || polled.isError) continue;
      status = polled.structuredContent.status;
      if (["complete", "failed", "cancelled", "deleted"].includes(status)) break;
    }
    totals.runs.push({ id, status });
    emit({ event: "run_done", id, status });
  }
}

async function loop(client, concurrency) {
  let stop = false;
  process.stdin.on("end", () => { stop = true; });
  process.stdin.on("close", () => { stop = true; });
  process.stdin.resume();
  const tools = [
    ["get_workspace", { workspace_id: workspace }],
    ["list_workspaces", {}],
    ["estimate_forge_price", { workspace_id: workspace, model_id: model, prompt: "a fox", batch_size: 1 }],
  ];
  const worker = async (w) => {
    for (let i = w; !stop; i++) {
      const [name, args] = tools[i % tools.length];
      await call(client, name, args);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, (_, w) => worker(w)));
}

async function main() {
  const client = new Client({ name: "cluster-test-client", version: "1.0.0" });
  const transport = new StreamableHTTPClientTransport(new URL(env.MCP_URL), {
    requestInit: { headers: { Authorization: `Bearer ${env.BEARER}` } },
  });
  transport.onerror = (error) => emit({ event: "transport_error", error: String(error) });
  await client.connect(transport);
  totals.session = transport.sessionId;
  totals.protocol = transport.protocolVersion;
  const { tools } = await client.listTools();
  totals.tools = tools.length;
  if (mode === "calls") {
    const count = Number(env.CALLS || "12");
    for (let i = 0; i < count; i++) {
      await call(client, i % 2 ? "list_workspaces" : "get_workspace", i % 2 ? {} : { workspace_id: workspace });
    }
  } else if (mode === "runs") {
    await runs(client, Number(env.RUNS || "4"));
  } else if (mode === "loop") {
    await loop(client, Number(env.CONCURRENCY || "2"));
  } else {
    throw new Error(`unknown MODE ${mode}`);
  }
  emit({ event: "done", ...totals });
  await client.close().catch(() => {});
  process.exit(0);
}

main().catch((error) => {
  emit({ event: "fatal", error: String(error && error.stack || error) });
  process.exit(1);
});
