"""Models, losses and metrics; importing this package fills ``MODELS``, ``LOSSES`` and ``METRICS``
in utils.registry."""
from model import ce, loss, metric  # noqa: F401
from model.hgr import hgr  # noqa: F401
from model.ranp import losses, metrics  # noqa: F401
