"""Transparent huge pages for torch's large CPU tensors; import before torch.

Importing this module sets ``THP_MEM_ALLOC_ENABLE=1`` unless the environment already sets it:
torch's CPU allocator then aligns allocations of 2 MB and more to huge pages and advises the
kernel to back them with 2 MB pages (where the kernel allows it, e.g. transparent_hugepage set
to "madvise" or "always"). A MSR-VTT training step allocates and first touches about a gigabyte
of gradients, activations and casts; with 4 KB pages that is some 170,000 page faults per step
(0.6 s per 732 MB on a 2-core CPU), with huge pages a twentieth of them. torch reads the
variable once, at its first allocation, so the command lines import this before torch.
"""
import os

os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")
