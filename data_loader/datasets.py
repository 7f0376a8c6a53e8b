"""Per-dataset facts: which stored splits a config's ``split_name`` trains and evaluates on."""
from __future__ import annotations

# dataset -> split_name -> (training split, evaluation split), names of splits in the store.
SPLITS: dict[str, dict[str, tuple[str, str]]] = {
    "Synthetic": {"val": ("train", "val"), "test": ("train", "test")},
}


def split_pair(dataset_name: str, split_name: str, available: list[str]) -> tuple[str, str]:
    """(train split, eval split) for ``split_name``.

    Known datasets use their table above; any other store evaluates on the split called
    ``split_name`` and trains on its ``train`` split. Raises KeyError naming the choices.
    """
    table = SPLITS.get(dataset_name)
    if table is not None:
        if split_name not in table:
            raise KeyError(f"data_loader.args.split_name: unknown split '{split_name}' for {dataset_name}; "
                           f"expected one of: {', '.join(table)}")
        return table[split_name]
    if split_name not in available:
        raise KeyError(f"data_loader.args.split_name: split '{split_name}' is not in the store; "
                       f"it has: {', '.join(sorted(available))}")
    return "train", split_name
