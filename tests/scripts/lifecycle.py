"""Drives the gateway with the Python `mcp` client, as an agent would: the forge lifecycle
(list_workspaces -> list_models -> estimate_forge_price -> execute_forge -> get_forge_run until
complete -> fetch an output and check it is a PNG), then a workflow run that is cancelled
(the balance must come back).

Env: MCP_URL, LAYER_PAT; MCP_MODE ("auto": 2026-07-28 `server/discover` first, falling back
to the handshake; "legacy": initialize); POLL_CAP_SECONDS caps the honoured poll interval.
Prints one JSON object on stdout; exits non-zero on any failure.
"""

import asyncio
import json
import os
import sys
import time
import urllib.request

from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

URL = os.environ["MCP_URL"]
PAT = os.environ["LAYER_PAT"]
MODE = os.environ.get("MCP_MODE", "auto")
POLL_CAP = float(os.environ.get("POLL_CAP_SECONDS", "10"))


def fail(message: str) -> None:
    print(message, file=sys.stderr)
    sys.exit(1)


async def call(client: Client, name: str, args: dict):
    result = await client.call_tool(name, args)
    if result.is_error:
        fail(f"{name} failed: {result.structured_content}")
    return result


async def main() -> None:
    out: dict = {"mode": MODE}
    async with create_mcp_http_client(headers={"Authorization": f"Bearer {PAT}"}) as http:
        async with Client(streamable_http_client(URL, http_client=http), mode=MODE) as client:
            out["protocol"] = str(getattr(client, "protocol_version", ""))
            tools = await client.list_tools()
            out["tools"] = len(tools.tools)

            workspaces = (await call(client, "list_workspaces", {})).structured_content["workspaces"]
            ws = next((w for w in workspaces if w["available_creative_units"] > 50), None) or fail("no credit")
            models = (await call(client, "list_models", {"workspace_id": ws["workspace_id"], "modality": "image"})).structured_content["models"]
            model = models[0]
            args = {"workspace_id": ws["workspace_id"], "model_id": model["model_id"], "prompt": "a paper boat on a pond", "batch_size": 1}
            estimate = (await call(client, "estimate_forge_price", args)).structured_content
            started = (await call(client, "execute_forge", {**args, "idempotency_key": f"py-{time.time_ns()}"})).structured_content
            interval = started["poll_interval_seconds"]
            run = None
            for _ in range(200):
                await asyncio.sleep(min(interval, POLL_CAP))
                run = (await call(client, "get_forge_run", {"workspace_id": ws["workspace_id"], "inference_id": started["inference_id"]})).structured_content
                if run["status"] in ("complete", "failed", "cancelled", "deleted"):
                    break
                interval = run.get("poll_interval_seconds") or interval
            if not run or run["status"] != "complete":
                fail(f"forge run ended as {run and run['status']}")
            png = urllib.request.urlopen(run["outputs"][0]["url"]).read()
            out["forge"] = {
                "inference_id": started["inference_id"],
                "estimate": estimate["estimated_price_creative_units"],
                "charged": run["actual_price_creative_units"],
                "output_is_png": png[:8] == b"\x89PNG\r\n\x1a\n",
            }

            workflows = (await call(client, "list_workflows", {"workspace_id": ws["workspace_id"]})).structured_content["workflows"]
            workflow = next(w for w in workflows if any(i["name"] == "character_prompt" for i in w["inputs"]))
            inputs = {"character_prompt": "a knight made of glass SIM_HOLD"}
            before = (await call(client, "get_workspace", {"workspace_id": ws["workspace_id"]})).structured_content["available_creative_units"]
            wf = (await call(client, "execute_workflow", {"workspace_id": ws["workspace_id"], "workflow_id": workflow["workflow_id"], "inputs": inputs})).structured_content
            ids = {"workspace_id": ws["workspace_id"], "workflow_id": workflow["workflow_id"], "run_id": wf["run_id"]}
            during = (await call(client, "get_workspace", {"workspace_id": ws["workspace_id"]})).structured_content["available_creative_units"]
            cancelled = (await call(client, "cancel_workflow_run", ids)).structured_content
            after = (await call(client, "get_workspace", {"workspace_id": ws["workspace_id"]})).structured_content["available_creative_units"]
            out["workflow"] = {
                "run_id": wf["run_id"],
                "cancelled_status": cancelled["status"],
                "available_before": before,
                "available_during": during,
                "available_after": after,
            }
    print(json.dumps(out))


asyncio.run(main())
