# syntax=docker/dockerfile:1
# Ctxfy: multi-stage, non-root, Python 3.13 (the interpreter the tests run on). It runs with a
# read-only root filesystem: everything it writes lives under the two VOLUMEs below.
# tests/e2e/test_image.py reproduces this file's install and runs its ENV, ENTRYPOINT, CMD and
# HEALTHCHECK: keep one command per RUN in the build stage, and ENV in key=value form.

FROM python:3.13-slim AS build
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/opt/venv
# The uv the Makefile pins (UV_VERSION).
RUN pip install --no-cache-dir "uv==0.13.9"
WORKDIR /src
# Dependencies first, from the lock alone, so code changes do not invalidate this layer.
COPY pyproject.toml uv.lock README.md ./
RUN --mount=type=cache,target=/root/.cache/uv uv sync --frozen --no-dev --no-install-project
COPY app ./app
COPY domain ./domain
COPY infrastructure ./infrastructure
RUN --mount=type=cache,target=/root/.cache/uv uv sync --frozen --no-dev --no-editable

FROM python:3.13-slim
LABEL org.opencontainers.image.title="ctxfy" \
      org.opencontainers.image.description="MCP server and REST API for context-engineering prompts" \
      org.opencontainers.image.version="0.1.0" \
      org.opencontainers.image.licenses="MIT"
# A numeric user, so Kubernetes' runAsNonRoot can check it; the data directory is its own.
RUN groupadd --system --gid 10001 ctxfy \
 && useradd --system --uid 10001 --gid 10001 --home-dir /nonexistent --no-create-home \
      --shell /usr/sbin/nologin ctxfy \
 && install --directory --owner=10001 --group=10001 --mode=0700 /var/lib/ctxfy
COPY --from=build /opt/venv /opt/venv
# Prod defaults. /mcp answers only to the CTXFY_ALLOWED_HOSTS names: set those clients use.
# Written at run time, and nowhere else: the SQLite key store (with its -wal and -shm files)
# under /var/lib/ctxfy; the pid file `ctxfy prompts reload` signals, and any temporary file
# (the metrics directory of several workers), under /tmp. Bytecode was compiled at build.
ENV VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    TMPDIR=/tmp \
    CTXFY_ENV=prod \
    CTXFY_HOST=0.0.0.0 \
    CTXFY_PORT=8000 \
    CTXFY_ALLOWED_HOSTS=localhost,127.0.0.1 \
    CTXFY_DATABASE_URL=sqlite:////var/lib/ctxfy/ctxfy.db \
    CTXFY_PID_FILE=/tmp/ctxfy.pid
VOLUME ["/var/lib/ctxfy", "/tmp"]
# Nothing is read from or written to the working directory.
WORKDIR /
USER 10001:10001
EXPOSE 8000
# Python rather than curl (the slim image has none); no proxy, whatever the environment says.
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
  CMD ["python", "-I", "-c", "import os, urllib.request as r; r.build_opener(r.ProxyHandler({})).open('http://127.0.0.1:%s/health/live' % os.environ.get('CTXFY_PORT', '8000'), timeout=2)"]
# SIGTERM drains (CTXFY_DRAIN_SECONDS, 5 s), then gives open requests up to
# CTXFY_SHUTDOWN_TIMEOUT_SECONDS (30 s): give `docker stop` a --time (compose:
# stop_grace_period) above their sum.
STOPSIGNAL SIGTERM
ENTRYPOINT ["ctxfy"]
CMD ["serve"]
