"""``GET /metrics``: every series in Prometheus's text format; public, not in OpenAPI."""

from fastapi import APIRouter
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.responses import Response

from infrastructure.metrics import Metrics

METRICS_PATH = "/metrics"


def build_router(metrics: Metrics) -> APIRouter:
    """The scrape route of ``metrics``."""
    router = APIRouter()

    @router.get(METRICS_PATH, include_in_schema=False, name="metrics")
    def scrape() -> Response:
        # A plain def: FastAPI runs it in a thread, so reading workers' files never
        # blocks the event loop.
        return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    return router
