"""The forge lifecycle over MCP's older HTTP+SSE transport, with the Python SDK's SSE client.

Reads MCP_URL, PAT, WORKSPACE_ID and MODEL_ID from the environment; prints one JSON object
with what happened (the test asserts on it) and exits 0, or prints the error and exits 1.
"""

import asyncio
import json
import os
import sys

from mcp import ClientSession
from mcp.client.sse import sse_client


def structured(result):
    if getattr(result, "is_error", False):
        raise RuntimeError(f"tool error: {result.structured_content or result.content}")
    return result.structured_content


async def main():
    url = os.environ["MCP_URL"]
    headers = {"Authorization": f"Bearer {os.environ['PAT']}"}
    workspace = os.environ["WORKSPACE_ID"]
    model = os.environ["MODEL_ID"]
    report = {}
    async with sse_client(url, headers=headers) as (read, write):
        async with ClientSession(read, write) as session:
            init = await session.initialize()
            report["protocol_version"] = str(init.protocol_version)
            tools = await session.list_tools()
            report["tools"] = sorted(t.name for t in tools.tools)
            guide = await session.call_tool("get_forge_instructions", {})
            report["guide_chars"] = sum(len(getattr(c, "text", "")) for c in guide.content)
            models = structured(
                await session.call_tool("list_models", {"workspace_id": workspace, "modality": "image"})
            )
            report["model_listed"] = any(m["model_id"] == model for m in models["models"])
            args = {
                "workspace_id": workspace,
                "model_id": model,
                "prompt": "a lighthouse at dusk, watercolour",
                "batch_size": 2,
            }
            estimate = structured(await session.call_tool("estimate_forge_price", args))
            report["estimate"] = estimate["estimated_price_creative_units"]
            started = structured(await session.call_tool("execute_forge", args))
            report["inference_id"] = started["inference_id"]
            report["started_status"] = started["status"]
            interval = min(float(started.get("poll_interval_seconds") or 1), 0.2)
            for _ in range(300):
                run = structured(
                    await session.call_tool(
                        "get_forge_run",
                        {"workspace_id": workspace, "inference_id": started["inference_id"]},
                    )
                )
                if run["status"] in ("complete", "failed", "cancelled", "deleted"):
                    break
                await asyncio.sleep(interval)
            report["status"] = run["status"]
            report["outputs"] = [o.get("url") for o in run.get("outputs", [])]
            report["charged"] = run.get("actual_price_creative_units")
            bad = await session.call_tool("get_workspace", {"workspace_id": "not-a-uuid"})
            report["bad_input_error"] = bad.is_error
            report["bad_input_code"] = (bad.structured_content or {}).get("code")
    print(json.dumps(report))


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except BaseException as error:  # report everything, including exception groups
        print(f"error: {error!r}", file=sys.stderr)
        sys.exit(1)
