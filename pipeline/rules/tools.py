"""Helpers for `rules test --url`: fetch one page through the normal fetcher and extract it."""

from __future__ import annotations

import asyncio

from ..errors import FetchError
from ..fetch import Fetcher, Policy, origin
from ..extract import extract_article


def load_url(url: str, timeout: float = 20.0) -> tuple[str, str]:
    async def go():
        async with Fetcher() as f:
            return await f.get(url, Policy(timeout=timeout, own_origin=origin(url)))

    resp = asyncio.run(go())
    resp.raise_for_error()
    if not resp.ok:
        raise FetchError(f"HTTP {resp.status} (no page to extract)", "status")
    page = extract_article(resp.body, resp.final_url or url, resp.headers)
    return page.title, page.text
