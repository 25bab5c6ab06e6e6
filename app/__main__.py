"""The ``ctxfy`` command (console script and ``python -m app``).

SIGTERM is handled before anything heavy is imported: in a container the command is PID 1,
which the kernel does not end for a signal it has no handler for, so a stop during start-up
would otherwise wait for the orchestrator's kill. Until the server installs its own drain
handler, SIGTERM exits at once with status 0.
"""

import signal
import sys
from types import FrameType


def _stop_before_serving(sig: int, frame: FrameType | None) -> None:
    sys.exit(0)


def main() -> None:
    """Entry point: install the early SIGTERM handler, then run the command line."""
    signal.signal(signal.SIGTERM, _stop_before_serving)
    from app.cli import main as cli  # after the handler, on purpose

    cli()


if __name__ == "__main__":
    main()
