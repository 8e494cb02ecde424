// Drives the gateway with the official TypeScript MCP SDK client, as an agent would:
// the forge lifecycle (list_workspaces -> list_models -> estimate_forge_price ->
// execute_forge -> get_forge_run until complete -> fetch an output and check it is a PNG),
// then the workflow lifecycle with a cancel (the balance must come back).
//
// Env: MCP_URL, LAYER_PAT; POLL_CAP_SECONDS caps the honoured poll interval (tests).
// Prints one JSON object on stdout; exits non-zero on any failure.
const { Client } = require("@modelcontextprotocol/sdk/client/index.js");
const { StreamableHTTPClientTransport } = require("@modelcontextprotocol/sdk/client/streamableHttp.js");

const url = process.env.MCP_URL;
const pat = process.env.LAYER_PAT;
const pollCap = Number(process.env.POLL_CAP_SECONDS || "10");

function fail(message) {
  console.error(message);
  process.exit(1);
}

async function call(client, name, args) {
  const result = await client.callTool({ name, arguments: args });
  if (result.isError) fail(`${name} failed: ${JSON.stringify(result.structuredContent)}`);
  return result;
}

const sleep = (s) => new Promise((r) => setTimeout(r, Math.min(s, pollCap) * 1000));

async function main() {
  const client = new Client({ name: "lifecycle-script", version: "1.0.0" });
  const transport = new StreamableHTTPClientTransport(new URL(url), {
    requestInit: { headers: { Authorization: `Bearer ${pat}` } },
  });
  await client.connect(transport);
  const out = { server: client.getServerVersion(), protocol: transport.protocolVersion };

  const { tools } = await client.listTools();
  out.tools = tools.length;

  // Discover.
  const workspaces = (await call(client, "list_workspaces", {})).structuredContent.workspaces;
  const ws = workspaces.find((w) => w.available_creative_units > 50) || fail("no workspace with credit");
  const models = (await call(client, "list_models", { workspace_id: ws.workspace_id, modality: "image" })).structuredContent.models;
  const model = models[0] || fail("no image model");

  // Estimate, then execute the same arguments.
  const args = { workspace_id: ws.workspace_id, model_id: model.model_id, prompt: "a lighthouse at dusk, oil painting", batch_size: 1 };
  const estimate = (await call(client, "estimate_forge_price", args)).structuredContent;
  if (!estimate.has_sufficient_creative_units) fail("insufficient credit");
  const started = (await call(client, "execute_forge", { ...args, idempotency_key: `lifecycle-${Date.now()}` })).structuredContent;

  // Poll, honouring poll_interval_seconds.
  let run;
  let interval = started.poll_interval_seconds;
  for (let i = 0; i < 200; i++) {
    await sleep(interval);
    const result = await call(client, "get_forge_run", { workspace_id: ws.workspace_id, inference_id: started.inference_id });
    run = result.structuredContent;
    if (["complete", "failed", "cancelled", "deleted"].includes(run.status)) {
      out.forge_links = result.content.filter((c) => c.type === "resource_link").map((c) => ({ uri: c.uri, mimeType: c.mimeType, size: c.size }));
      out.forge_summary = result.content[0].text;
      break;
    }
    interval = run.poll_interval_seconds || interval;
  }
  if (!run || run.status !== "complete") fail(`forge run ended as ${run && run.status}`);
  const png = Buffer.from(await (await fetch(run.outputs[0].url)).arrayBuffer());
  out.forge = {
    workspace_id: ws.workspace_id,
    model_id: model.model_id,
    estimate: estimate.estimated_price_creative_units,
    charged: run.actual_price_creative_units,
    inference_id: started.inference_id,
    output_is_png: png.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])),
  };

  // Workflow lifecycle with a cancel. SIM_HOLD keeps the simulated run going until cancelled.
  const workflows = (await call(client, "list_workflows", { workspace_id: ws.workspace_id })).structuredContent.workflows;
  const workflow = workflows.find((w) => w.inputs.some((i) => i.name === "character_prompt")) || fail("no prompt-only workflow");
  const inputs = { character_prompt: "a lighthouse keeper in a yellow coat SIM_HOLD" };
  const wfEstimate = (await call(client, "estimate_workflow_price", { workspace_id: ws.workspace_id, workflow_id: workflow.workflow_id, inputs })).structuredContent;
  const before = (await call(client, "get_workspace", { workspace_id: ws.workspace_id })).structuredContent.available_creative_units;
  const wfStarted = (await call(client, "execute_workflow", { workspace_id: ws.workspace_id, workflow_id: workflow.workflow_id, inputs })).structuredContent;
  const during = (await call(client, "get_workspace", { workspace_id: ws.workspace_id })).structuredContent.available_creative_units;
  const ids = { workspace_id: ws.workspace_id, workflow_id: workflow.workflow_id, run_id: wfStarted.run_id };
  const polled = (await call(client, "get_workflow_run", ids)).structuredContent;
  const cancelled = (await call(client, "cancel_workflow_run", ids)).structuredContent;
  const after = (await call(client, "get_workspace", { workspace_id: ws.workspace_id })).structuredContent.available_creative_units;
  out.workflow = {
    workflow_id: workflow.workflow_id,
    run_id: wfStarted.run_id,
    estimate: wfEstimate.estimated_price_creative_units,
    polled_status: polled.status,
    cancelled_status: cancelled.status,
    available_before: before,
    available_during: during,
    available_after: after,
  };
  await client.close();
  console.log(JSON.stringify(out));
}

main().catch((e) => fail(`error: ${e && e.stack || e}`));
