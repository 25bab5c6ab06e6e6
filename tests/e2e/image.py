"""The Dockerfile read as data, for tests that reproduce the image without a Docker engine.

Parses what the image tests follow rather than duplicate: stages and their instructions,
``ENV`` as Docker expands it, exec-form arrays, ``VOLUME``\\s; the build context
``.dockerignore`` leaves; and a mount namespace whose root is read-only but for chosen
directories, as ``docker run --read-only`` with volumes gives.
"""

import json
import os
import re
import shlex
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

# Docker's PATH when an image sets none, as python:3.13-slim leaves it, and its other ENV a
# process here needs (the interpreter itself is the virtualenv's).
BASE_IMAGE_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG": "C.UTF-8",
}
SANDBOX_TIMEOUT = 10


@dataclass(frozen=True, slots=True)
class Instruction:
    """One instruction: its keyword in capitals and the text after it."""

    keyword: str
    arguments: str

    def exec_form(self) -> tuple[str, ...]:
        """The JSON array of an exec-form ``CMD``, ``ENTRYPOINT`` or ``VOLUME``."""
        words = json.loads(self.arguments)
        assert isinstance(words, list), f"{self.keyword} is not in exec form: {self.arguments}"
        return tuple(map(str, words))


@dataclass(frozen=True, slots=True)
class Stage:
    """A ``FROM`` and the instructions up to the next one."""

    base: str
    name: str | None
    instructions: tuple[Instruction, ...]

    def all(self, keyword: str) -> tuple[Instruction, ...]:
        """This stage's instructions with ``keyword``, in order."""
        return tuple(i for i in self.instructions if i.keyword == keyword)

    def last(self, keyword: str) -> Instruction:
        """The instruction with ``keyword`` that takes effect (the last one)."""
        found = self.all(keyword)
        assert found, f"the stage FROM {self.base} has no {keyword}"
        return found[-1]

    def env(self, base: Mapping[str, str]) -> dict[str, str]:
        """``base`` plus this stage's ``ENV``, each expanded as Docker does (``$X``,
        ``${X}``: values from before the instruction)."""
        env = dict(base)
        for instruction in self.all("ENV"):
            before = dict(env)
            for word in shlex.split(instruction.arguments):
                key, equals, value = word.partition("=")
                assert equals, f"ENV {instruction.arguments!r}: use the key=value form"
                env[key] = _expand(value, before)
        return env

    def volumes(self) -> tuple[str, ...]:
        """Every path this stage declares a ``VOLUME``."""
        return tuple(path for i in self.all("VOLUME") for path in i.exec_form())

    def healthcheck(self) -> tuple[str, ...]:
        """The ``HEALTHCHECK``'s command (its exec-form ``CMD``)."""
        _options, command, array = self.last("HEALTHCHECK").arguments.partition("CMD")
        assert command, "HEALTHCHECK has no CMD"
        return Instruction("CMD", array.strip()).exec_form()


def _expand(value: str, env: Mapping[str, str]) -> str:
    return re.sub(r"\$(?:\{(\w+)\}|(\w+))", lambda m: env.get(m.group(1) or m.group(2), ""), value)


def _logical_lines(text: str) -> Iterator[str]:
    """Instruction lines, continuations joined and comment lines dropped (as Docker does,
    also inside a continued instruction)."""
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        yield pending + line
        pending = ""
    if pending.strip():
        yield pending


def parse_dockerfile(path: Path) -> tuple[Stage, ...]:
    """The stages of the Dockerfile at ``path``, first to last."""
    stages: list[Stage] = []
    for line in _logical_lines(path.read_text(encoding="utf-8")):
        keyword, _, arguments = line.partition(" ")
        keyword, arguments = keyword.upper(), arguments.strip()
        if keyword == "FROM":
            words = arguments.split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(base=words[0], name=name, instructions=()))
            continue
        assert stages, f"{keyword} before any FROM"
        stage = stages[-1]
        stages[-1] = Stage(
            stage.base, stage.name, (*stage.instructions, Instruction(keyword, arguments))
        )
    return tuple(stages)


def run_command(instruction: Instruction) -> str:
    """A ``RUN``'s shell command, without its ``--mount``/``--network`` options."""
    words = instruction.arguments.split(" ")
    while words and words[0].startswith("--"):
        words.pop(0)
    return " ".join(words).strip()


def remap(value: str, paths: Mapping[str, Path]) -> str:
    """``value`` with each image path of ``paths`` (at a path boundary) replaced, in one
    pass so that a replacement is never itself rewritten."""
    if not paths:
        return value
    alternatives = "|".join(re.escape(p) for p in sorted(paths, key=len, reverse=True))
    return re.sub(
        rf"(?<![\w.-])({alternatives})(?=[/:,;]|$)", lambda m: str(paths[m.group(1)]), value
    )


def _pattern(text: str) -> re.Pattern[str]:
    """A ``.dockerignore`` line as a regular expression over context-relative paths."""
    text = os.path.normpath(text.strip()).lstrip("/")
    parts: list[str] = []
    i = 0
    while i < len(text):
        if text.startswith("**/", i):
            parts.append("(?:.*/)?")
            i += 3
        elif text.startswith("**", i):
            parts.append(".*")
            i += 2
        elif text[i] == "*":
            parts.append("[^/]*")
            i += 1
        elif text[i] == "?":
            parts.append("[^/]")
            i += 1
        elif text[i] == "[" and "]" in text[i:]:
            end = text.index("]", i)
            parts.append(text[i : end + 1])
            i = end + 1
        else:
            parts.append(re.escape(text[i]))
            i += 1
    return re.compile("".join(parts))


def build_context(root: Path) -> tuple[str, ...]:
    """The files ``docker build root`` sends, relative to ``root``: a path is left out when
    the last ``.dockerignore`` pattern matching it or a parent directory is not a ``!``."""
    ignore = root / ".dockerignore"
    lines = ignore.read_text(encoding="utf-8").splitlines() if ignore.exists() else []
    rules = [
        (line.startswith("!"), _pattern(line.removeprefix("!")))
        for line in (raw.strip() for raw in lines)
        if line and not line.startswith("#")
    ]
    negations = [pattern for negated, pattern in rules if negated]

    def excluded(relative: str) -> bool:
        parents = relative.split("/")
        prefixes = ["/".join(parents[: n + 1]) for n in range(len(parents))]
        verdict = False
        for negated, pattern in rules:
            if any(pattern.fullmatch(prefix) for prefix in prefixes):
                verdict = not negated
        return verdict

    files: list[str] = []
    for directory, subdirectories, names in os.walk(root):
        base = Path(directory).relative_to(root).as_posix()
        prefix = "" if base == "." else base + "/"
        # A directory left out is not entered unless a `!` pattern could bring a file back.
        subdirectories[:] = [
            d
            for d in subdirectories
            if not excluded(prefix + d)
            or any(p.pattern.startswith(re.escape(prefix + d)) for p in negations)
        ]
        files.extend(prefix + n for n in names if not excluded(prefix + n))
    return tuple(sorted(files))


def read_only_root(writable: tuple[Path, ...], probe_dir: Path) -> tuple[str, ...] | None:
    """A command prefix running a program in a mount namespace where ``/`` is read-only
    except ``writable`` (as ``docker run --read-only`` with volumes); ``None`` where this
    kernel or user may not make one. Checked: a file can be made in ``writable[0]`` and
    none in ``probe_dir``."""
    mounts = "".join(
        f"mount --bind {shlex.quote(str(d))} {shlex.quote(str(d))} && " for d in writable
    )
    user = () if os.geteuid() == 0 else ("--user", "--map-root-user")
    prefix = (
        "unshare",
        *user,
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        f'{mounts}mount -o remount,bind,ro / && exec "$@"',
        "sh",
    )
    allowed, refused = writable[0] / ".probe", probe_dir / ".probe"
    check = f"touch {shlex.quote(str(allowed))} && ! touch {shlex.quote(str(refused))} 2>/dev/null"
    try:
        done = subprocess.run(
            [*prefix, "sh", "-c", check],
            capture_output=True,
            timeout=SANDBOX_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    allowed.unlink(missing_ok=True)
    if done.returncode != 0 or refused.exists():
        refused.unlink(missing_ok=True)
        return None
    return prefix
