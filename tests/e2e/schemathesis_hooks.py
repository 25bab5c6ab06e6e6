"""Schemathesis hooks for the OpenAPI gate (loaded through ``SCHEMATHESIS_HOOKS``).

The stateful phase follows the API's own links, so it lists keys and revokes or rotates them,
its own admin key among them, after which every request would be a 401 and the rest of the
run would test nothing. The auth provider below hands out a working admin key: it checks the
current one and, once the server refuses it, makes a new one with ``ctxfy keys create`` on
the server's key store, as an operator would.
"""

import os
import subprocess
import sys
from typing import Any

import httpx
import schemathesis

KEY_VARIABLE = "CTXFY_SCHEMATHESIS_KEY"
URL_VARIABLE = "CTXFY_SCHEMATHESIS_URL"
TIMEOUT = 30.0


def _works(key: str) -> bool:
    response = httpx.get(
        f"{os.environ[URL_VARIABLE]}/v1/keys?user_id=schemathesis",
        headers={"Authorization": f"Bearer {key}"},
        timeout=TIMEOUT,
    )
    return response.status_code == 200


def _new_admin_key() -> str:
    made = subprocess.run(
        [
            sys.executable,
            "-m",
            "app",
            "keys",
            "create",
            "--user",
            "schemathesis",
            "--scope",
            "admin",
        ],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=True,
    )
    return made.stdout.strip()


@schemathesis.auth()
class WorkingAdminKey:
    """The run's admin key, replaced by a new one when the run has revoked or rotated it."""

    def __init__(self) -> None:
        self.key = os.environ[KEY_VARIABLE]

    def get(self, case: schemathesis.Case[Any], ctx: schemathesis.AuthContext) -> str:
        if not _works(self.key):
            self.key = _new_admin_key()
        return self.key

    def set(self, case: schemathesis.Case[Any], data: str, ctx: schemathesis.AuthContext) -> None:
        # Both schemes carry the same key, so whichever one a case uses, the credentials agree.
        case.headers["Authorization"] = f"Bearer {data}"
        case.headers["X-API-Key"] = data
