"""HGR as a model of this project: registered "HGR", trained and evaluated like CE.

Inputs: ``experts`` {name: [B, T, d]} frame features of the ``frame_experts`` (concatenated
per frame in that order) with ``ind`` {name: [B]} the number of valid frames (the loader's
``frame_sampling: "select"`` gives both); ``text`` a :class:`base.role_graph_text.RoleGraphText`
laid out [B, K]. Scores are [caption, video] (the project's convention) and pairwise:
evaluation scores blocks of bounded memory through :meth:`HGR.similarity`.

The state_dict is ``video_encoder.*`` and ``text_encoder.*`` under the original's names, so a
released checkpoint maps onto it (:func:`model.hgr.checkpoint.from_original`).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from base.role_graph_text import RoleGraphText
from model.hgr.matching import FUSIONS, TextEmbeds, VideoEmbeds, fused, level_scores, level_scores_blocked
from model.hgr.text import RoleGraphTextEncoder
from model.hgr.video import MultilevelVideoEncoder
from utils.errors import ConfigError
from utils.registry import MODELS

LEVELS = ("global", "verb", "noun")


@dataclass
class HGRConfig:
    """Options of an HGR model, under the original's names where it has one.

    ``feat_dims`` (injected: expert -> width of one frame; the other injected widths,
    ``text_dim`` ... ``disable_nan_checks``, are CE's and unused here) and ``frame_experts`` (the experts
    concatenated per frame, in order; default all of ``feat_dims``) set the video input width.
    ``num_words``: vocabulary size (the store's HGR text file must match). The defaults are
    RANP's EK-100 / MSR-VTT settings. ``eval_block_mib``: memory budget of one scoring block.
    ``init_checkpoint``: a checkpoint in the original's layout whose matching entries a new
    run starts from (RANP's GloVe checkpoint holds the word embeddings only); "" for none.
    """

    feat_dims: dict[str, int]
    num_words: int
    frame_experts: list[str] = field(default_factory=list)
    dim_embed: int = 1024
    video_dropout: float = 0.2
    num_levels: int = 3
    share_enc: bool = False
    dim_word: int = 300
    rnn_hidden_size: int = 1024
    text_dropout: float = 0.2
    fix_word_embed: bool = False
    num_roles: int = 16
    gcn_num_layers: int = 1
    gcn_attention: bool = True
    gcn_dropout: float = 0.5
    num_verbs: int = 4
    num_nouns: int = 6
    simattn_sigma: float = 4.0
    attn_fusion: str = "embed"
    eval_block_mib: int = 256
    init_checkpoint: str = ""
    text_dim: int = 0
    pooled_experts: list[str] = field(default_factory=list)
    ce_shared_dim: int = 0
    disable_nan_checks: bool = False

    def __post_init__(self) -> None:
        self.frame_experts = list(self.frame_experts or self.feat_dims)
        missing = [e for e in self.frame_experts if e not in self.feat_dims]
        if missing:
            raise ConfigError(f"arch.args.frame_experts: '{missing[0]}' is not an expert of the config "
                              f"(experts: {', '.join(self.feat_dims)})")
        if self.attn_fusion not in FUSIONS:
            raise ConfigError(f"arch.args.attn_fusion: expected one of {FUSIONS}, got {self.attn_fusion!r}")
        if self.num_levels != 3:
            raise ConfigError(f"arch.args.num_levels: HGR matches 3 levels, got {self.num_levels}")
        if self.dim_embed != self.rnn_hidden_size:
            raise ConfigError(f"arch.args.dim_embed ({self.dim_embed}) must equal rnn_hidden_size "
                              f"({self.rnn_hidden_size}): videos and captions are compared in one space")

    @property
    def dim_input(self) -> int:
        return sum(self.feat_dims[e] for e in self.frame_experts)


@MODELS.register()
class HGR(nn.Module):
    """Hierarchical Graph Reasoning: three-level video and role-graph text encoders, matched per pair."""

    config_class = HGRConfig
    uses_moe_weights = False
    # what its data loader must be set to (checked by trainer.build.build_data): HGR's frame
    # sampling (frame counts in ``ind``) and captions as role graphs
    loader_args = {"frame_sampling": "select"}
    needs_role_graphs = True

    def __init__(self, config: HGRConfig):
        super().__init__()
        self.config = config
        self.modalities = list(config.frame_experts)
        self.video_encoder = MultilevelVideoEncoder(config.dim_input, config.dim_embed, config.video_dropout,
                                                    config.num_levels, config.share_enc)
        self.text_encoder = RoleGraphTextEncoder(config.num_words, config.dim_word, config.rnn_hidden_size,
                                                 config.text_dropout, config.num_roles, config.gcn_num_layers,
                                                 config.gcn_attention, config.gcn_dropout, config.fix_word_embed)

    # ------------------------------------------------------------------ encoders
    def frames(self, experts: dict[str, torch.Tensor], ind: dict[str, torch.Tensor]
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """Frame features [B, T, D] (the frame experts concatenated) and frame counts [B]."""
        frames = torch.cat([experts[name] for name in self.modalities], dim=-1)
        return frames, ind[self.modalities[0]].long()

    def video_embeds(self, experts: dict[str, torch.Tensor], ind: dict[str, torch.Tensor]) -> VideoEmbeds:
        frames, lengths = self.frames(experts, ind)
        sent, verb, noun = self.video_encoder(frames, lengths)
        return VideoEmbeds(sent, verb, noun, lengths)

    def text_embeds(self, text: RoleGraphText) -> TextEmbeds:
        """Captions of any layout S, flattened: [prod(S)] rows."""
        flat = text.flat()
        sent, verb, noun = self.text_encoder(flat.sent_ids, flat.sent_lens, flat.verb_masks, flat.noun_masks,
                                             flat.node_roles, flat.rel_edges)
        counts = [(m.sum(2) > 0).sum(1) for m in (flat.verb_masks, flat.noun_masks)]
        return TextEmbeds(sent, verb, noun, *counts)

    # ------------------------------------------------------------------ the project's model interface
    def forward(self, experts: dict[str, torch.Tensor], ind: dict[str, torch.Tensor],
                text: RoleGraphText) -> dict:
        """A training batch of B videos and their B captions (``text`` [B, 1]) ->
        ``cross_view_conf_matrix`` [B, B] (caption rows) of the fused score, and
        ``level_similarities`` {level: [B, B]} (caption rows) of each level."""
        levels = level_scores(self.video_embeds(experts, ind), self.text_embeds(text), self.config.simattn_sigma,
                              self.config.attn_fusion)
        return {"cross_view_conf_matrix": fused(levels).t(),
                "level_similarities": {name: score.t() for name, score in zip(LEVELS, levels)}}

    def embed_videos(self, experts: dict[str, torch.Tensor], ind: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """{"sent": [B, E], "verb", "noun": [B, T, E], "lengths": [B]}."""
        return vars(self.video_embeds(experts, ind)).copy()

    def embed_text(self, text: RoleGraphText) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """Captions [*S] -> ({"sent": [C, E], "verb", "noun": [C, P, E], "verb_counts",
        "noun_counts": [C]}, no expert weights [C, 0]) with C = prod(S)."""
        embeds = vars(self.text_embeds(text)).copy()
        return embeds, embeds["sent"].new_zeros(embeds["sent"].size(0), 0)

    def similarity(self, text_embds: dict[str, torch.Tensor], moe_weights: torch.Tensor,
                   vid_embds: dict[str, torch.Tensor], ind: dict[str, torch.Tensor], merge: str = "indep"
                   ) -> torch.Tensor:
        """Fused scores [C, V] (caption rows, float32) of every caption against every video,
        scored in blocks of about ``eval_block_mib`` MiB (``moe_weights``, ``ind`` and
        ``merge`` are unused: HGR weighs no experts)."""
        scores = level_scores_blocked(VideoEmbeds(**vid_embds), TextEmbeds(**text_embds), self.config.simattn_sigma,
                                      self.config.attn_fusion, self.config.eval_block_mib * 2 ** 20)
        return scores.t()
