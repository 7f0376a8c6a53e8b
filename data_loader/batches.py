"""Index-gathered batches from a loaded :class:`FeatureStore` (no per-sample Python loop)."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from base.role_graph_text import RoleGraphText
from data_loader.store.feature_store import FeatureStore
from data_loader.store.file_rows import FileRows


@dataclass
class Batch:
    """B videos with K captions each, as the model and the loss take them.

    ``experts``: {name: [B, D]} for fixed experts, {name: [B, T, d]} for token experts (first
    ``max_tokens[name]`` tokens, zero padded); ``ind``: {name: [B]} float 0/1 availability;
    ``text``: [B, K, T, D] word embeddings (zero padded), or HGR's word ids and role graphs
    (``RoleGraphText`` [B, K]); ``video_rows``: [B] store rows of the videos; ``caption_rows``:
    [B, K] store caption rows; ``relevance``: None, or for K = 1
    the float32 [B, B] semantic relevance of video i to caption j, indexed [video, caption]
    (for relevance-aware losses); when a rank holds a share of a global batch, that of the
    whole global batch. ``global_rows``: None, or when a rank holds a share of a global batch
    the (video rows [G], caption rows [G]) of the whole global batch (for TeachText's targets).
    """

    experts: dict[str, torch.Tensor]
    ind: dict[str, torch.Tensor]
    text: torch.Tensor | RoleGraphText
    video_rows: torch.Tensor
    caption_rows: torch.Tensor
    relevance: torch.Tensor | None = None
    global_rows: tuple[torch.Tensor, torch.Tensor] | None = None

    def to(self, device: torch.device) -> "Batch":
        """The same batch with every tensor on ``device`` (``global_rows`` stay where they are)."""
        return Batch({k: v.to(device) for k, v in self.experts.items()}, {k: v.to(device) for k, v in self.ind.items()},
                     self.text.to(device), self.video_rows.to(device), self.caption_rows.to(device),
                     None if self.relevance is None else self.relevance.to(device), self.global_rows)

    def __len__(self) -> int:
        return len(self.video_rows)


def row_spans(offsets: torch.Tensor, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(start, length) of the packed rows ``rows`` (any shape S, -1 = empty row, length 0) among
    the values ``offsets`` [R+1] index: both [prod(S)]."""
    flat_rows = rows.reshape(-1)
    safe = flat_rows.clamp(min=0)
    start = offsets[safe]
    return start, torch.where(flat_rows >= 0, offsets[safe + 1] - start, torch.zeros_like(start))


def token_slots(offsets: torch.Tensor, rows: torch.Tensor, max_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Where the first ``max_len`` tokens of the packed rows ``rows`` lie.

    offsets: [R+1]; rows: any shape S of row indices (-1 = empty row). Returns (index, keep),
    both [prod(S), max_len]: the position of each slot's token among the packed values, and
    whether the row has a token there.
    """
    start, length = row_spans(offsets, rows)
    steps = torch.arange(max_len, dtype=offsets.dtype, device=offsets.device)
    return start[:, None] + steps[None, :], steps[None, :] < length[:, None]


def gather_tokens(values: FileRows | torch.Tensor, offsets: torch.Tensor, rows: torch.Tensor,
                  max_len: int) -> torch.Tensor:
    """Pad the packed rows ``rows`` to ``max_len`` tokens.

    values: [T_total, d] (read from a file: one read per row, straight into place); offsets:
    [R+1]; rows: any shape S of row indices (-1 = empty row). Returns [*S, max_len, d]: the
    first ``max_len`` tokens of each row, zeros after its end.
    """
    if isinstance(values, FileRows):
        out = values.runs(*row_spans(offsets, rows), max_len)
    else:
        index, keep = token_slots(offsets, rows, max_len)
        out = values[index.clamp(max=max(values.shape[0] - 1, 0))]
        out.masked_fill_(~keep[..., None], 0)
    return out.reshape(*rows.shape, max_len, values.shape[-1])


def select_frames(values: FileRows | torch.Tensor, offsets: torch.Tensor, rows: torch.Tensor,
                  max_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """HGR's frame sampling (the original's ``pad_or_trim_feature(trim_type="select")``): a row of
    L > ``max_len`` tokens keeps those at ``round(linspace(0, L - 1, max_len))`` (half to even,
    as numpy), a shorter one is zero padded. rows [B] -> (frames [B, max_len, d], lengths
    [B], ``min(L, max_len)``)."""
    start, length = row_spans(offsets, rows)
    full = gather_tokens(values, offsets, rows, max(int(length.max()) if len(length) else 1, 1))
    steps = torch.arange(max_len, dtype=torch.float64, device=length.device)
    spread = torch.round(steps[None, :] * ((length[:, None] - 1).double() / max(max_len - 1, 1))).long()
    index = torch.where(length[:, None] > max_len, spread, steps.long()[None, :]).clamp(max=full.shape[1] - 1)
    frames = full.gather(1, index[..., None].expand(-1, -1, full.shape[-1]).to(full.device))
    kept = length.clamp(max=max_len)
    frames.masked_fill_((steps[None, :] >= kept[:, None]).to(frames.device)[..., None], 0)
    return frames, kept


def expert_batch(store: FeatureStore, video_rows: torch.Tensor,
                 max_tokens: dict[str, int]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Features and availability of the videos ``video_rows`` [B] for every loaded expert."""
    experts, ind = {}, {}
    for name, expert in store.experts.items():
        if expert.offsets is None:
            experts[name] = expert.features[video_rows].float()
        else:
            experts[name] = gather_tokens(expert.features, expert.offsets, video_rows, max_tokens[name]).float()
        ind[name] = expert.available[video_rows].float()
    return experts, ind


def text_batch(store: FeatureStore, caption_rows: torch.Tensor, max_tokens: int) -> torch.Tensor:
    """Word embeddings [*S, max_tokens, D] of the captions ``caption_rows`` [*S] (-1 = none)."""
    if store.text_tokens is None:
        return gather_tokens(store.text_embeddings, store.text_offsets, caption_rows, max_tokens).float()
    index, keep = token_slots(store.text_offsets, caption_rows, max_tokens)
    words = store.text_embeddings[store.text_tokens[index.clamp(max=max(len(store.text_tokens) - 1, 0))]].float()
    words.masked_fill_(~keep[..., None], 0)
    return words.reshape(*caption_rows.shape, max_tokens, words.shape[-1])


def caption_table(store: FeatureStore, video_rows: torch.Tensor, num_captions: int) -> torch.Tensor:
    """Caption rows [N, num_captions] of each video's first captions, -1 where it has fewer."""
    start = store.caption_offsets[video_rows]
    count = store.caption_offsets[video_rows + 1] - start
    slots = torch.arange(num_captions, device=start.device)
    return torch.where(slots[None, :] < count[:, None], start[:, None] + slots[None, :], -1)


def sample_captions(store: FeatureStore, video_rows: torch.Tensor, generator: torch.Generator,
                    first: int = 0, kept_upto: torch.Tensor | None = None) -> torch.Tensor:
    """One caption row per video, drawn uniformly among its captions: its first ``first`` ones
    when ``first`` > 0, else its kept ones when ``kept_upto`` [C] is given, the running count of
    the captions a mask keeps (``kept.long().cumsum(0)``; every video must keep one): [B] -> [B]."""
    start = store.caption_offsets[video_rows]
    count = store.caption_offsets[video_rows + 1] - start
    if first > 0:
        count = count.clamp(max=first)
    elif kept_upto is not None:
        before = torch.where(start > 0, kept_upto[(start - 1).clamp(min=0)], torch.zeros_like(start))
        count = kept_upto[start + count - 1] - before
    draw = torch.rand(len(video_rows), generator=generator, dtype=torch.float64).to(count.device)
    pick = (draw * count).long().clamp(max=count - 1)
    if first > 0 or kept_upto is None:
        return start + pick
    return torch.searchsorted(kept_upto, before + pick + 1)


def make_batch(store: FeatureStore, video_rows: torch.Tensor, caption_rows: torch.Tensor,
               max_tokens: dict[str, int]) -> Batch:
    """The :class:`Batch` of videos ``video_rows`` [B] and captions ``caption_rows`` [B, K]."""
    experts, ind = expert_batch(store, video_rows, max_tokens)
    return Batch(experts, ind, text_batch(store, caption_rows, max_tokens["text"]), video_rows, caption_rows)


def shard_bounds(size: int, rank: int, world_size: int) -> tuple[int, int]:
    """``[lo, hi)`` of rank ``rank``'s contiguous share of ``size`` items split over ``world_size``
    ranks; the first ``size % world_size`` ranks get one item more."""
    base, extra = divmod(size, world_size)
    lo = rank * base + min(rank, extra)
    return lo, lo + base + (rank < extra)
