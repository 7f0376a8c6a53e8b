"""The original Collaborative Experts code's files, read safely as this project's values.

``unpickle``: the one restricted unpickler (plain containers, numpy, and what a caller allows);
``config``: the original's saved ``config.json`` translated to this project's schema.
The released feature pickles are read through ``unpickle`` by ``data_loader/released/convert.py``;
the original's checkpoints through ``trainer/checkpoints/``. Nothing here imports a module above ``utils``.
"""
