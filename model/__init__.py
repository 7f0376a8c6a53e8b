"""Models and losses; importing this package registers them in ``utils.registry``."""
from model import ce, loss  # noqa: F401
