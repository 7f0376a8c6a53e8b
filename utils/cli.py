"""Shared command-line behaviour: bad input becomes one line on stderr and exit 2."""
from __future__ import annotations

import argparse
import errno
import sys
from typing import Callable

from utils.config.options import PRECISIONS
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
    except OSError as exc:
        line = environment_error(exc)
        if line is None:
            raise
        print(f"error: {line}", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)
    except KeyboardInterrupt:
        print("interrupted: checkpoints written so far are complete; continue with --resume <checkpoint>",
              file=sys.stderr)
        sys.exit(130)
    sys.exit(code or 0)


ENVIRONMENT_ERRORS = {
    errno.ENOSPC: "no space left on device (ENOSPC); files written before are intact",
    errno.EDQUOT: "disk quota exceeded (EDQUOT); files written before are intact",
    errno.ENOTDIR: "a component of this path is a file, not a folder (ENOTDIR)",
    errno.EEXIST: "exists and is not a folder (EEXIST)",
    errno.EACCES: "permission denied (EACCES)",
    errno.EROFS: "read-only file system (EROFS)",
}
"""What the machine, not the program, got wrong: said in one line naming the path."""


def environment_error(exc: OSError) -> str | None:
    """One line for an OSError the user's machine caused (a full disk, a path through a file,
    no permission), naming the path; None for any other OSError (a bug keeps its traceback)."""
    reason = ENVIRONMENT_ERRORS.get(exc.errno)
    if reason is None:
        return None
    return f"{exc.filename or 'writing a file'}: {reason}"


def add_device_options(parser: argparse.ArgumentParser) -> None:
    """``--device`` and ``--precision``, shortcuts for ``--set trainer.device=... trainer.precision=...``."""
    parser.add_argument("--device", help='where the model runs: "auto" (CUDA when present), "cpu", "cuda" or '
                                         '"cuda:<n>", or a bare GPU number as the original took it (trainer.device)')
    parser.add_argument("--precision", choices=PRECISIONS,
                        help="forward passes in float32 or under bfloat16 autocast; auto: bf16 where the hardware "
                             "computes it natively, else fp32 (trainer.precision)")


def device_overrides(args: argparse.Namespace) -> list[str]:
    """The ``--set`` entries that ``--device`` and ``--precision`` stand for (``--device 0``, the
    original's GPU number, is ``cuda:0``)."""
    device = f"cuda:{args.device}" if args.device is not None and args.device.isdigit() else args.device
    chosen = {"trainer.device": device, "trainer.precision": args.precision}
    return [f"{key}={value}" for key, value in chosen.items() if value is not None]
