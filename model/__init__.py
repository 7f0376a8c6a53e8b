"""Models and losses; importing this package fills ``MODELS`` and ``LOSSES`` in utils.registry."""
from model import ce, loss  # noqa: F401
