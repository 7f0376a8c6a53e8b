"""Shared command-line behaviour: known errors become one line on stderr and an exit code."""
from __future__ import annotations

import sys
from typing import Callable

from data_loader.store import StoreError
from trainer.checkpoint import CheckpointError
from utils.config import ConfigError

EXIT_BAD_INPUT = 2


def run_cli(main: Callable[[], int | None]) -> None:
    """Run ``main``; bad input exits 2 with ``error: <one line>``, Ctrl-C exits 130."""
    try:
        code = main()
    except (ConfigError, StoreError, CheckpointError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)
    except (ValueError, KeyError, NotImplementedError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"error: {message}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("interrupted: checkpoints written so far are complete; continue with --resume <checkpoint>",
              file=sys.stderr)
        sys.exit(130)
    sys.exit(code or 0)
