"""Every answer says: do not sniff, cache or frame it; API answers may load nothing."""

import re

import anyio
import httpx
import pytest

from tests.mcp_messages import ACCEPT, initialize

pytestmark = pytest.mark.anyio

API_CSP = "default-src 'none'; frame-ancestors 'none'"
# Catalog reads carry an ETag and may be kept by the caller's own cache, which must revalidate
# (test_etag.py); every other answer may not be kept at all.
REVALIDATED = {"/v1/prompts": "private, no-cache"}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/prompts"),
        ("GET", "/v1/prompts/no_such_prompt"),
        ("GET", "/health/live"),
        ("GET", "/metrics"),
        ("GET", "/openapi.json"),
        ("POST", "/mcp"),
    ],
)
async def test_api_answers_forbid_sniffing_caching_and_framing(
    client: httpx.AsyncClient, method: str, path: str
) -> None:
    with anyio.fail_after(10):
        response = await client.request(
            method, path, json=initialize() if method == "POST" else None, headers=ACCEPT
        )
    assert response.headers["x-content-type-options"] == "nosniff"
    # An event stream keeps its own "no-cache, no-transform", which proxies must not buffer.
    sse = response.headers["content-type"].startswith("text/event-stream")
    kept = "no-cache, no-transform" if sse else REVALIDATED.get(path, "no-store")
    assert response.headers["cache-control"] == kept
    assert response.headers["content-security-policy"] == API_CSP


async def test_an_unauthenticated_refusal_carries_them_too(client: httpx.AsyncClient) -> None:
    with anyio.fail_after(10):
        response = await client.get("/v1/prompts", headers={"Authorization": ""})
    assert response.status_code == 401
    assert response.headers["content-security-policy"] == API_CSP


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
async def test_the_documentation_pages_may_not_be_framed(
    client: httpx.AsyncClient, path: str
) -> None:
    with anyio.fail_after(10):
        response = await client.get(path)
    assert response.status_code == 200
    policy = response.headers["content-security-policy"]
    assert policy.startswith("default-src 'none'; script-src 'self' 'unsafe-inline';")
    assert policy.endswith("frame-ancestors 'none'")
    assert "http" not in policy, "nothing may load from another site"
    assert response.headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
async def test_the_documentation_pages_load_their_assets_from_this_server(
    client: httpx.AsyncClient, path: str
) -> None:
    with anyio.fail_after(10):
        page = await client.get(path)
        assets = re.findall(r'(?:src|href)="(/docs/assets/[^"]+)"', page.text)
        fetched = [await client.get(asset, headers={"Authorization": ""}) for asset in assets]

    assert "cdn" not in page.text.lower()
    assert assets
    assert [r.status_code for r in fetched] == [200] * len(assets)
