"""Drives a local stdio MCP server (e.g. the mcp-remote proxy) with the Python SDK: lists the
tools and calls one, the way a desktop client uses mcp-remote.

Usage: stdio_list_call.py TOOL ARGS_JSON -- COMMAND [ARG...]. Prints one JSON object
{"tools": [...], "result": {...}, "is_error": bool}; exits 1 on failure.
"""

import asyncio
import json
import os
import sys

from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client


async def main(tool, arguments, command):
    params = StdioServerParameters(command=command[0], args=command[1:], env=dict(os.environ))
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            tools = await session.list_tools()
            result = await session.call_tool(tool, arguments)
            print(
                json.dumps(
                    {
                        "tools": sorted(t.name for t in tools.tools),
                        "result": result.structured_content,
                        "is_error": bool(result.is_error),
                    }
                )
            )


if __name__ == "__main__":
    separator = sys.argv.index("--")
    tool, arguments = sys.argv[1], json.loads(sys.argv[2])
    try:
        asyncio.run(main(tool, arguments, sys.argv[separator + 1 :]))
    except BaseException as error:
        print(f"error: {error!r}", file=sys.stderr)
        sys.exit(1)
