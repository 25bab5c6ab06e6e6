# syntax=docker/dockerfile:1
# Ctxfy: multi-stage, non-root, Python 3.13 (the same interpreter the tests run on).

FROM python:3.13-slim AS build
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/opt/venv
RUN pip install --no-cache-dir "uv==0.13.9"
WORKDIR /src
# Dependencies first, so code changes do not invalidate this layer.
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project
COPY app ./app
COPY domain ./domain
COPY infrastructure ./infrastructure
RUN uv sync --frozen --no-dev --no-editable

FROM python:3.13-slim
RUN groupadd --system --gid 10001 ctxfy \
 && useradd --system --uid 10001 --gid ctxfy --no-create-home --shell /usr/sbin/nologin ctxfy
COPY --from=build /opt/venv /opt/venv
# /mcp answers only to the CTXFY_ALLOWED_HOSTS names: set those clients use (prod requires it).
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    CTXFY_ENV=prod \
    CTXFY_HOST=0.0.0.0 \
    CTXFY_PORT=8000 \
    CTXFY_ALLOWED_HOSTS=localhost,127.0.0.1
WORKDIR /home/ctxfy
USER ctxfy:ctxfy
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health/live' % os.environ.get('CTXFY_PORT', '8000'), timeout=2)"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["ctxfy"]
CMD ["serve"]
