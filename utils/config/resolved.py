"""A resolved config: the merged dict, where each key came from, and the file it was read from."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from utils.atomic import write_text_atomic
from utils.errors import ConfigError


@dataclass
class Config:
    """A resolved config: the merged dict, where each key came from, and the top file."""

    data: dict
    origin: dict[str, str]
    path: Path

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    def where(self, keypath: str) -> str:
        """The file (or ``--set``) that gave ``keypath`` or its nearest set ancestor."""
        parts = keypath.split(".")
        for n in range(len(parts), 0, -1):
            found = self.origin.get(".".join(parts[:n]))
            if found:
                return found
        return str(self.path)

    def error(self, keypath: str, message: str) -> ConfigError:
        return ConfigError(f"{self.where(keypath)}: {keypath}: {message}")

    def save(self, path: Path) -> None:
        """Write the resolved config as JSON (atomically)."""
        write_text_atomic(path, json.dumps(self.data, indent=2, sort_keys=False) + "\n")
