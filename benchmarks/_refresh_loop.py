"""The bare refresh loop that ``renew_all.py`` compares tokenctl with (a helper, no benchmark).

Refreshes every refresh token in a JSON file with authlib's ``AsyncOAuth2Client`` on
httpx2 (the client ``tokenctl renew --all`` uses), at most ``concurrency`` requests at
once, and nothing else: no lock, no inventory, no keyring. The rotated refresh tokens are
written back to the file, so the next run refreshes with the newest ones. Prints one JSON
report on stdout and exits 0 when every refresh succeeded, 1 otherwise::

    python benchmarks/_refresh_loop.py STATE.json

``STATE.json``: ``{"token_endpoint": URL, "client_id": ID, "concurrency": 8,
"refresh_tokens": [...]}``. The report: ``{"refreshed": N, "failed": [{"index": I,
"error": E}], "loop_seconds": S}``; ``loop_seconds`` is the loop alone, without the
interpreter's start and the imports.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

from authlib.integrations.httpx_client import AsyncOAuth2Client

HTTP_TIMEOUT = 30.0


async def refresh_all(
    token_endpoint: str, client_id: str, refresh_tokens: list[str], concurrency: int
) -> tuple[list[str], list[dict[str, Any]]]:
    """Refresh every token, ``concurrency`` at once; the new refresh tokens and the failures."""
    limit = asyncio.Semaphore(concurrency)
    newest = list(refresh_tokens)
    failed: list[dict[str, Any]] = []
    client = AsyncOAuth2Client(
        client_id=client_id, token_endpoint_auth_method="none", timeout=HTTP_TIMEOUT
    )

    async def one(index: int) -> None:
        async with limit:
            try:
                response = await client.refresh_token(
                    token_endpoint, refresh_token=refresh_tokens[index]
                )
            except Exception as error:  # reported; the caller decides
                failed.append({"index": index, "error": f"{type(error).__name__}: {error}"})
                return
            newest[index] = response.get("refresh_token") or refresh_tokens[index]

    try:
        await asyncio.gather(*(one(index) for index in range(len(refresh_tokens))))
    finally:
        await client.aclose()
    return newest, failed


def main(argv: list[str]) -> int:
    """Run the loop over the state file named in ``argv``; print the report."""
    if len(argv) != 1:
        print("usage: _refresh_loop.py STATE.json", file=sys.stderr)
        return 2
    path = Path(argv[0])
    state = json.loads(path.read_text())
    started = time.perf_counter()
    newest, failed = asyncio.run(
        refresh_all(
            state["token_endpoint"],
            state["client_id"],
            state["refresh_tokens"],
            int(state["concurrency"]),
        )
    )
    loop_seconds = time.perf_counter() - started
    path.write_text(json.dumps({**state, "refresh_tokens": newest}))
    report = {
        "refreshed": len(newest) - len(failed),
        "failed": failed,
        "loop_seconds": loop_seconds,
    }
    print(json.dumps(report))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
