"""Cacheable catalog reads: a strong ``ETag`` of the catalog's content on the listing, a
description and a prompt's versions, and ``If-None-Match`` answered 304."""

from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from app.http.etag import CACHE_CONTROL, entity_tag, none_match
from tests.api.catalog_files import versioned_app, versioned_prompts
from tests.api.harness import serving

pytestmark = pytest.mark.anyio

READS = ["/v1/prompts", "/v1/prompts/greet", "/v1/prompts/greet/versions"]
TAG = entity_tag("some", "representation")


@pytest.fixture
def prompts_dir(tmp_path: Path) -> Path:
    return versioned_prompts(tmp_path / "prompts")


@pytest.fixture
def app(prompts_dir: Path) -> FastAPI:
    return versioned_app(prompts_dir)


def test_an_entity_tag_is_quoted_and_names_exactly_its_parts() -> None:
    assert TAG.startswith('"')
    assert TAG.endswith('"')
    assert entity_tag("some", "representation") == TAG
    assert entity_tag("some", "other") != TAG
    assert entity_tag("some\0representation") != entity_tag("some", "representation", "")


@pytest.mark.parametrize(
    "header",
    [TAG, f"W/{TAG}", "*", f' "other", {TAG} ', f'W/"other",W/{TAG}', f'"a,b", {TAG}'],
)
def test_if_none_match_matches_the_tag_by_weak_comparison(header: str) -> None:
    assert none_match(header, TAG)


@pytest.mark.parametrize(
    "header", ['"other"', TAG.strip('"'), "", "W/", '"', f"{TAG[:-2]}", "**", f"x{TAG[1:-1]}"]
)
def test_if_none_match_without_the_tag_matches_nothing(header: str) -> None:
    assert not none_match(header, TAG)


@pytest.mark.parametrize("path", READS)
async def test_a_catalog_read_carries_a_strong_etag_and_asks_caches_to_revalidate(
    client: httpx.AsyncClient, path: str
) -> None:
    response = await client.get(path)

    assert response.status_code == 200
    tag = response.headers["etag"]
    assert tag.startswith('"')
    assert not tag.startswith("W/")
    assert response.headers["cache-control"] == CACHE_CONTROL == "private, no-cache"
    assert response.headers["content-type"] == "application/json"


@pytest.mark.parametrize("path", READS)
async def test_if_none_match_with_the_current_tag_is_a_304_without_a_body(
    client: httpx.AsyncClient, path: str
) -> None:
    tag = (await client.get(path)).headers["etag"]

    for header in (tag, f"W/{tag}", f'"stale", {tag}', "*"):
        response = await client.get(path, headers={"If-None-Match": header})

        assert response.status_code == 304, header
        assert response.content == b""
        assert response.headers["etag"] == tag
        assert response.headers["cache-control"] == CACHE_CONTROL
        assert "content-type" not in response.headers


@pytest.mark.parametrize("path", READS)
async def test_if_none_match_with_another_tag_gets_the_full_answer(
    client: httpx.AsyncClient, path: str
) -> None:
    full = await client.get(path)

    for header in ('"stale"', "not a tag", full.headers["etag"].strip('"')):
        response = await client.get(path, headers={"If-None-Match": header})

        assert response.status_code == 200, header
        assert response.content == full.content
        assert response.headers["etag"] == full.headers["etag"]


async def test_different_representations_never_share_a_tag(client: httpx.AsyncClient) -> None:
    paths = [
        *READS,
        "/v1/prompts/greet@1.0.0",
        "/v1/prompts/greet@2.0.0",
        "/v1/prompts/context_stack",
        "/v1/prompts/context_stack/versions",
    ]
    answers = [await client.get(path) for path in paths]

    assert all(a.status_code == 200 for a in answers)
    assert len({a.headers["etag"] for a in answers}) == len({a.content for a in answers})
    assert len({a.headers["etag"] for a in answers}) == len(paths)


@pytest.mark.parametrize(
    "same", ["/v1/prompts/greet@1.1.0", "/v1/prompts/greet?version=1.1.0", "/v1/prompts/greet"]
)
async def test_one_version_described_any_way_is_one_representation_with_one_tag(
    client: httpx.AsyncClient, same: str
) -> None:
    pinned = await client.get("/v1/prompts/greet@1.1.0")
    other = await client.get(same)

    assert other.content == pinned.content
    assert other.headers["etag"] == pinned.headers["etag"]


async def test_the_tag_of_a_pinned_version_is_not_the_tag_of_the_current_one(
    client: httpx.AsyncClient,
) -> None:
    current = (await client.get("/v1/prompts/greet")).headers["etag"]

    response = await client.get(
        "/v1/prompts/greet?version=1.0.0", headers={"If-None-Match": current}
    )

    assert response.status_code == 200
    assert response.json()["version"] == "1.0.0"
    assert response.headers["etag"] != current


async def test_two_servers_of_the_same_files_give_the_same_tags(
    app: FastAPI, prompts_dir: Path
) -> None:
    tags: list[list[str]] = []
    for each in (app, versioned_app(prompts_dir)):
        async with serving(each) as client:
            tags.append([(await client.get(path)).headers["etag"] for path in READS])

    first, second = tags
    assert first == second


async def test_a_prompt_changed_on_disk_changes_no_tag_until_the_catalog_reloads(
    app: FastAPI, prompts_dir: Path, client: httpx.AsyncClient
) -> None:
    before = [(await client.get(path)).headers["etag"] for path in READS]
    (prompts_dir / "greet-1.0.0.yaml").unlink()

    after = [(await client.get(path)).headers["etag"] for path in READS]

    assert after == before
