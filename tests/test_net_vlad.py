"""Tests for NetVLAD pooling (model/net_vlad.py)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from model.net_vlad import NetVLAD

B, N, D, K = 3, 5, 8, 4


def make_vlad(ghost_clusters: int = 0) -> NetVLAD:
    torch.manual_seed(0)
    return NetVLAD(cluster_size=K, feature_size=D, ghost_clusters=ghost_clusters).eval()


def tokens(num_tokens: int = N) -> torch.Tensor:
    return torch.randn(B, num_tokens, D, generator=torch.Generator().manual_seed(1))


def test_output_shape_and_parameters():
    vlad = make_vlad(ghost_clusters=2)
    assert vlad(tokens()).shape == (B, K * D)
    assert vlad.out_dim == K * D
    assert vlad.clusters.shape == (D, K + 2)
    assert vlad.clusters2.shape == (1, D, K)
    assert list(vlad.state_dict())[:3] == ["clusters", "clusters2", "batch_norm.weight"]


def test_intra_normalised_then_globally_unit_norm():
    out = make_vlad()(tokens())
    assert torch.allclose(out.norm(dim=1), torch.ones(B), atol=1e-6)
    per_cluster = out.reshape(B, D, K).norm(dim=1)  # D-major layout: index d*K + k
    assert torch.allclose(per_cluster, torch.full((B, K), K ** -0.5), atol=1e-6)


def test_matches_direct_formula_in_eval_mode():
    vlad = make_vlad(ghost_clusters=1)
    x = tokens()
    bn = vlad.batch_norm
    logits = (x @ vlad.clusters - bn.running_mean) / torch.sqrt(bn.running_var + bn.eps)
    assign = F.softmax(logits, dim=-1)[..., :K]  # [B, N, K]
    centres = vlad.clusters2[0]  # [D, K]
    expected = []
    for b in range(B):
        residuals = [(assign[b, :, k:k + 1] * (x[b] - centres[:, k])).sum(0) for k in range(K)]
        per_cluster = torch.stack([F.normalize(r, dim=0) for r in residuals], dim=1)  # [D, K]
        expected.append(F.normalize(per_cluster.flatten(), dim=0))
    assert torch.allclose(vlad(x), torch.stack(expected), atol=1e-6)


def test_ghost_clusters_change_assignments_not_size():
    plain, ghosted = make_vlad(), make_vlad(ghost_clusters=3)
    with torch.no_grad():
        ghosted.clusters[:, :K] = plain.clusters
        ghosted.clusters2.copy_(plain.clusters2)
    x = tokens()
    out_plain, out_ghost = plain(x), ghosted(x)
    assert out_plain.shape == out_ghost.shape == (B, K * D)
    assert not torch.allclose(out_plain, out_ghost, atol=1e-4)


def test_padding_tokens_take_part_and_mask_is_ignored():
    vlad = make_vlad()
    x = tokens()
    padded = torch.cat([x, torch.zeros(B, 3, D)], dim=1)
    assert not torch.allclose(vlad(x), vlad(padded), atol=1e-4)
    mask = torch.tensor([5.0, 2.0, 1.0])
    assert torch.equal(vlad(padded, mask), vlad(padded))


def test_batch_norm_uses_statistics_over_all_tokens_in_training():
    vlad = make_vlad().train()
    x = tokens()
    alone = vlad(x[:1])
    together = vlad(x)[:1]
    assert not torch.allclose(alone, together, atol=1e-4)
