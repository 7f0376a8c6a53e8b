"""Streaming HTTP downloads with a progress bar, HTTP Range resume, a size check and one-line errors.

Shared by the command lines that fetch released files (``misc/sync_experts.py``: feature
archives; ``misc/sync_models.py``: published checkpoints). A download goes to a ``.partial``
file; an interrupted one leaves its bytes there and the next call asks the server for the rest.
"""
from __future__ import annotations

import hashlib
import re
from pathlib import Path

import requests
import urllib3
from tqdm import tqdm

from utils.atomic import refuse_symlink

CHUNK = 1 << 20
TIMEOUT = (15, 60)  # seconds: connect, between bytes


class DownloadError(Exception):
    """A failed transfer the user can act on (server unreachable, HTTP error, cut connection), in one line."""


class NotFoundError(DownloadError):
    """The server answered 404 Not Found."""


def file_digest(path: Path, algorithm: str = "sha256") -> str:
    """Hex digest (``sha256``, ``sha1``, ... as hashlib names them) of a file, read in chunks."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _reason(exc: BaseException) -> str:
    """A short reason for a network error: the OS-level one if any (e.g. 'Connection refused')."""
    seen: BaseException | None = exc
    for _ in range(10):  # the chain is short; the bound guards against cycles
        if seen is None:
            break
        if isinstance(seen, OSError) and seen.strerror:
            return seen.strerror
        inner = getattr(seen, "reason", None)
        seen = inner if isinstance(inner, BaseException) else (seen.__cause__ or seen.__context__)
    text = next((arg for arg in exc.args if isinstance(arg, str)), "")
    return text or type(exc).__name__


def _request(url: str, offset: int) -> requests.Response:
    """GET ``url`` streamed, asking for bytes from ``offset`` on when it is non-zero."""
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    try:
        return requests.get(url, headers=headers, stream=True, timeout=TIMEOUT)
    except requests.Timeout:
        raise DownloadError(f"{url}: the server did not answer in time; re-run later or check --root_url") from None
    except requests.RequestException as exc:
        raise DownloadError(f"{url}: cannot connect ({_reason(exc)}); check your network or --root_url") from None


def _range_start(response: requests.Response) -> int | None:
    """First byte of a 206 answer (``Content-Range: bytes START-END/TOTAL``)."""
    match = re.match(r"bytes (\d+)-", response.headers.get("Content-Range", ""))
    return int(match.group(1)) if match else None


def _range_total(response: requests.Response) -> int | None:
    """Full size the server reports in a 416 answer (``Content-Range: bytes */TOTAL``)."""
    match = re.match(r"bytes \*/(\d+)", response.headers.get("Content-Range", ""))
    return int(match.group(1)) if match else None


def download(url: str, partial: Path, hint_404: str = "") -> None:
    """Stream ``url`` into ``partial``, resuming from its current size when the server allows it.

    A server that ignores the Range header (200) or answers with another start restarts the
    download from zero. The received size must equal the announced Content-Length. Raises
    DownloadError on HTTP errors (a 404's message ends with ``hint_404``) or a broken connection
    (the bytes received so far stay in ``partial`` for the next call).
    """
    offset = partial.stat().st_size if partial.exists() else 0
    with _request(url, offset) as response:
        if response.status_code == 416 and offset and _range_total(response) == offset:
            return  # the previous run had already received every byte
        if response.status_code == 206 and _range_start(response) == offset:
            mode = "ab"
        elif response.status_code == 200:
            offset, mode = 0, "wb"
        elif offset and response.status_code in (206, 416):
            partial.unlink()
            return download(url, partial, hint_404)
        elif response.status_code == 404:
            raise NotFoundError(f"{url}: HTTP 404 {response.reason}{hint_404}")
        else:
            raise DownloadError(f"{url}: HTTP {response.status_code} {response.reason}")
        length = response.headers.get("Content-Length")
        total = offset + int(length) if length and length.isdigit() else None
        partial.parent.mkdir(parents=True, exist_ok=True)
        refuse_symlink(partial)
        with open(partial, mode) as out, tqdm(total=total, initial=offset, unit="B", unit_scale=True,
                                              unit_divisor=1024, desc=partial.name.removesuffix(".partial"),
                                              disable=None) as bar:
            try:
                for chunk in response.raw.stream(CHUNK, decode_content=False):
                    out.write(chunk)
                    bar.update(len(chunk))
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                raise DownloadError(f"{url}: download interrupted ({_reason(exc)}) after {out.tell()} bytes; "
                                    f"re-run the same command to resume") from None
            received = out.tell()
    if total is not None and received != total:
        raise DownloadError(f"{url}: download ended after {received} of {total} bytes; "
                            f"re-run the same command to resume")
