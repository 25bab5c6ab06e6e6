"""Virtualenvs of their own under ``.tools/`` for tools that cannot share the project's.

Each is built by the interpreter running the tests, beside its final place and renamed into
it, so a run that stops half-way, or two runs building at once, never leave a venv that looks
ready and is not; it is rebuilt only when its pins or that interpreter change.
"""

import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

TOOLS_DIR = Path(__file__).resolve().parents[1] / ".tools"
VENV_TIMEOUT = 120
MARKER = "ctxfy-tool-venv.txt"


class ToolVenvError(RuntimeError):
    """A tool venv could not be built; the message carries pip's output."""


def _record(pins: Sequence[str]) -> str:
    return "\n".join((f"python {sys.version}", *pins)) + "\n"


def _python(venv: Path) -> Path:
    return venv / "bin" / "python"


def _ready(venv: Path, pins: Sequence[str]) -> bool:
    marker = venv / MARKER
    return marker.is_file() and marker.read_text() == _record(pins) and _python(venv).exists()


def _run(step: str, command: list[str], timeout: float) -> None:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        # on POSIX the partial output of a timed-out run is bytes, even in text mode
        output = [o.decode() if isinstance(o, bytes) else o for o in (exc.stdout, exc.stderr)]
        raise ToolVenvError(
            f"{step} took over {timeout}s:\n" + "\n".join(filter(None, output))
        ) from exc
    if done.returncode != 0:
        raise ToolVenvError(f"{step} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")


def tool_python(name: str, pins: Sequence[str], *, install_timeout: float) -> Path:
    """The python of ``.tools/<name>``, a venv holding exactly ``pins``, built (bounded)
    unless already there.

    Raises:
        ToolVenvError: venv creation or pip failed or timed out.
    """
    venv = TOOLS_DIR / name
    if _ready(venv, pins):
        return _python(venv)
    venv.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=venv.parent, prefix=f"{venv.name}.building.") as tmp:
        build = Path(tmp) / "venv"
        _run("python -m venv", [sys.executable, "-m", "venv", str(build)], VENV_TIMEOUT)
        pip = [str(_python(build)), "-m", "pip", "install", "--no-input", *pins]
        _run(f"pip install {' '.join(pins)}", pip, install_timeout)
        (build / MARKER).write_text(_record(pins))
        if not _ready(venv, pins):
            shutil.rmtree(venv, ignore_errors=True)
            try:
                build.rename(venv)
            except OSError:
                if not _ready(venv, pins):  # a concurrent run's venv is fine to use; else fail
                    raise
    return _python(venv)
