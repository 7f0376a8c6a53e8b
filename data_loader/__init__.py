"""Feature stores, the embedded Synthetic dataset and index-gathered batches."""
from data_loader import expert_loader  # noqa: F401  (registers ExpertDataLoader)
