"""Shared command-line behaviour: bad input becomes one line on stderr and exit 2."""
from __future__ import annotations

import sys
from typing import Callable

from utils.errors import UserError

EXIT_BAD_INPUT = 2


def run_cli(main: Callable[[], int | None]) -> None:
    """Run ``main``; a :class:`UserError` exits 2 with ``error: <one line>``, Ctrl-C exits 130.

    Any other exception is a bug and keeps its traceback.
    """
    try:
        code = main()
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)
    except KeyboardInterrupt:
        print("interrupted: checkpoints written so far are complete; continue with --resume <checkpoint>",
              file=sys.stderr)
        sys.exit(130)
    sys.exit(code or 0)
