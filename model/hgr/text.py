"""HGR's text encoder: word embedding, biGRU (directions averaged), a sentence node
attention-pooled over words, verb and argument nodes max-pooled over their word spans and
multiplied by a learned role embedding, and a graph convolution over the role graph.

Parameter names follow the original (``embedding.we``, ``rnn``, ``ft_attn``,
``role_embedding``, ``gcn.layers.<k>.*``), so a released checkpoint's ``text_encoder``
entries load unchanged.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from model.hgr.graph import GCNEncoder
from model.hgr.video import MASKED, sequence_mask

PHRASE_PAD = -1e10  # the original's fill for words outside a phrase before max-pooling


class WordEmbedding(nn.Module):
    """Word ids [...] -> vectors [..., dim_word], initialised uniformly in +-1/sqrt(dim_word)."""

    def __init__(self, num_words: int, dim_word: int, fixed: bool = False):
        super().__init__()
        self.we = nn.Embedding(num_words, dim_word)
        bound = 1.0 / dim_word ** 0.5
        nn.init.uniform_(self.we.weight, -bound, bound)
        self.we.weight.requires_grad = not fixed

    def forward(self, word_ids: torch.Tensor) -> torch.Tensor:
        return self.we(word_ids)


def max_pool_phrases(word_embeds: torch.Tensor, phrase_masks: torch.Tensor) -> torch.Tensor:
    """word_embeds [B, W, E], phrase_masks [B, P, W] (bool) -> [B, P, E], the max over each
    phrase's words (-1e10 everywhere for a phrase without words)."""
    embeds = word_embeds.unsqueeze(1).masked_fill(phrase_masks.unsqueeze(3) == 0, PHRASE_PAD)
    return torch.max(embeds, 2)[0]


class RoleGraphTextEncoder(nn.Module):
    """Captions with their role graphs -> sentence [B, E], verb [B, NV, E] and noun [B, NN, E] nodes."""

    def __init__(self, num_words: int, dim_word: int = 300, hidden_size: int = 1024, dropout: float = 0.2,
                 num_roles: int = 16, gcn_num_layers: int = 1, gcn_attention: bool = True,
                 gcn_dropout: float = 0.5, fix_word_embed: bool = False):
        super().__init__()
        self.hidden_size = hidden_size
        self.embedding = WordEmbedding(num_words, dim_word, fix_word_embed)
        self.rnn = nn.GRU(dim_word, hidden_size, num_layers=1, bias=True, batch_first=True, bidirectional=True)
        self.dropout = nn.Dropout(dropout)
        self.ft_attn = nn.Linear(hidden_size, 1)
        self.role_embedding = nn.Embedding(num_roles, hidden_size) if num_roles > 0 else None
        self.gcn = GCNEncoder(hidden_size, gcn_num_layers, attention=gcn_attention, dropout=gcn_dropout)
        for name, param in self.rnn.named_parameters():
            if name.startswith("weight"):
                nn.init.orthogonal_(param.data)
            else:
                nn.init.constant_(param, 0)

    def word_states(self, sent_ids: torch.Tensor, sent_lens: torch.Tensor) -> torch.Tensor:
        """sent_ids [B, W], sent_lens [B] (>= 1) -> GRU states [B, W, H], the mean of both
        directions (zeros past each caption's end)."""
        word_embeds = self.dropout(self.embedding(sent_ids))
        packed = pack_padded_sequence(word_embeds, sent_lens.cpu(), batch_first=True, enforce_sorted=False)
        outs, _ = pad_packed_sequence(self.rnn(packed)[0], batch_first=True, total_length=sent_ids.size(1))
        forward, backward = torch.split(outs, self.hidden_size, dim=2)
        return (forward + backward) / 2

    def forward(self, sent_ids: torch.Tensor, sent_lens: torch.Tensor, verb_masks: torch.Tensor,
                noun_masks: torch.Tensor, node_roles: torch.Tensor, rel_edges: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """sent_ids [B, W] (long), sent_lens [B], verb_masks [B, NV, W] and noun_masks [B, NN, W]
        (bool, the words of each node), node_roles [B, NV + NN] (long), rel_edges
        [B, 1 + NV + NN, 1 + NV + NN] -> (sentence [B, H], verbs [B, NV, H], nouns [B, NN, H])."""
        states = self.word_states(sent_ids, sent_lens)
        scores = self.ft_attn(states).squeeze(2)
        scores = scores.masked_fill(sequence_mask(sent_lens, scores.size(1)) == 0, MASKED)
        sent_embeds = torch.sum(states * torch.softmax(scores, dim=1).unsqueeze(2), 1)
        num_verbs = verb_masks.size(1)
        verb_embeds = max_pool_phrases(states, verb_masks)
        noun_embeds = max_pool_phrases(states, noun_masks)
        if self.role_embedding is not None:
            verb_embeds = verb_embeds * self.role_embedding(node_roles[:, :num_verbs])
            noun_embeds = noun_embeds * self.role_embedding(node_roles[:, num_verbs:])
        nodes = self.gcn(torch.cat([sent_embeds.unsqueeze(1), verb_embeds, noun_embeds], 1), rel_edges)
        return nodes[:, 0], nodes[:, 1:1 + num_verbs].contiguous(), nodes[:, 1 + num_verbs:].contiguous()
