"""Connects to an MCP URL with the Python SDK's OAuth provider, as an app would.

The browser is the test's: this script prints `AUTHORIZE <url>` when the SDK wants the user
sent to the authorization page, and reads the redirect URL the browser ended on (`<callback
url>?code=…&state=…&iss=…`) from stdin. Then it lists the tools, calls one, and prints
`TOOLS <json>` and `CALL <json>`.
"""

import asyncio
import json
import os
import sys
from urllib.parse import parse_qs, urlparse

import httpx2
from mcp import ClientSession
from mcp.client.auth import OAuthClientProvider, TokenStorage
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import AuthorizationCodeResult, OAuthClientInformationFull, OAuthClientMetadata, OAuthToken


class MemoryStorage(TokenStorage):
    def __init__(self):
        self.tokens = None
        self.client = None

    async def get_tokens(self):
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken):
        self.tokens = tokens

    async def get_client_info(self):
        return self.client

    async def set_client_info(self, client_info: OAuthClientInformationFull):
        self.client = client_info


async def main(url: str) -> None:
    loop = asyncio.get_running_loop()

    async def redirect_handler(authorization_url: str) -> None:
        print("AUTHORIZE", authorization_url, flush=True)

    async def callback_handler() -> AuthorizationCodeResult:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        query = parse_qs(urlparse(line.strip()).query)
        first = lambda k: query.get(k, [None])[0]  # noqa: E731
        return AuthorizationCodeResult(code=first("code"), state=first("state"), iss=first("iss"))

    provider = OAuthClientProvider(
        server_url=url,
        client_metadata=OAuthClientMetadata(
            client_name="Python MCP test client",
            redirect_uris=["http://localhost:47123/callback"],
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
            token_endpoint_auth_method="none",
        ),
        storage=MemoryStorage(),
        redirect_handler=redirect_handler,
        callback_handler=callback_handler,
    )
    async with httpx2.AsyncClient(auth=provider, timeout=30) as http:
        async with streamable_http_client(url, http_client=http) as streams:
            read, write = streams[0], streams[1]
            async with ClientSession(read, write) as session:
                await session.initialize()
                tools = await session.list_tools()
                print("TOOLS", json.dumps(sorted(t.name for t in tools.tools)), flush=True)
                result = await session.call_tool("list_workspaces", {})
                print("CALL", json.dumps({"is_error": bool(result.is_error), "structured": result.structured_content}), flush=True)
                extra = int(os.environ.get("EXTRA_CALLS", "0"))
                interval = float(os.environ.get("CALL_INTERVAL_SECONDS", "1"))
                outcomes = {"ok": 0, "errors": []}
                for _ in range(extra):
                    await asyncio.sleep(interval)
                    try:
                        result = await session.call_tool("list_workspaces", {})
                        if result.is_error:
                            outcomes["errors"].append(str(result.structured_content))
                        else:
                            outcomes["ok"] += 1
                    except Exception as error:  # noqa: BLE001 - reported to the test
                        outcomes["errors"].append(repr(error))
                if extra:
                    print("CALLS", json.dumps(outcomes), flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
