# Two commands on a fresh machine:
#   make serve   install what the server needs and serve on 127.0.0.1:8000
#   make test    install what the tests need (Python and Node packages) and run them all
# Python 3.13 is chosen by .python-version (pyenv and uv both read it).

UV_VERSION := 0.13.9
PYTHON ?= python3.13
TOOLS := .tools
UV := $(TOOLS)/bin/uv
NODE_DIR := tests/e2e/node
NODE_STAMP := $(NODE_DIR)/node_modules/.package-lock.json

export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := .venv

.PHONY: serve test lint typecheck check openapi readme clean

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"

$(NODE_STAMP): $(NODE_DIR)/package.json $(NODE_DIR)/package-lock.json
	cd $(NODE_DIR) && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error

serve: $(UV)
	$(UV) run --frozen ctxfy serve

test: $(UV) $(NODE_STAMP)
	$(UV) run --frozen pytest --cov --cov-report=term
	$(UV) run --frozen coverage report --include='domain/*' --fail-under=95 --no-skip-covered

lint: $(UV)
	$(UV) run --frozen ruff check .
	$(UV) run --frozen ruff format --check .

typecheck: $(UV)
	$(UV) run --frozen mypy

check: lint typecheck test

openapi: $(UV)
	$(UV) run --frozen ctxfy openapi --output openapi/openapi.json

readme: $(UV)
	$(UV) run --frozen python scripts/readme_settings.py

clean:
	rm -rf $(TOOLS) .venv $(NODE_DIR)/node_modules .coverage htmlcov
