"""Tests for the Mixture-of-Embedding-Experts model (model/mee.py)."""
from __future__ import annotations

import copy
import doctest

import pytest
import torch

import model.mee
from model.gating import GatedEmbeddingUnit
from model.mee import MEE

DIMS = {"face": (6, 4), "audio.vggish": (10, 5), "motion": (8, 3)}
TEXT_DIM = 7


@pytest.fixture()
def mee() -> MEE:
    torch.manual_seed(0)
    net = MEE(DIMS, TEXT_DIM)
    for unit in [*net.video_GU, *net.text_GU]:  # non-trivial batch-norm statistics
        unit.cg.batch_norm.running_mean.uniform_(-0.5, 0.5)
        unit.cg.batch_norm.running_var.uniform_(0.5, 2.0)
    return net.eval()


def make_batch(num_videos: int = 5, num_captions: int = 3, seed: int = 1) -> tuple:
    """Captions ``[Nt, TEXT_DIM]``, videos, and an availability pattern with gaps."""
    gen = torch.Generator().manual_seed(seed)
    captions = torch.randn(num_captions, TEXT_DIM, generator=gen)
    videos = {name: torch.randn(num_videos, in_dim, generator=gen) for name, (in_dim, _) in DIMS.items()}
    ind = {"face": torch.tensor([1, 0, 1, 0, 1])[:num_videos],
           "audio.vggish": torch.tensor([1.0, 1.0, 0.0, 0.0, 1.0])[:num_videos],
           "motion": torch.tensor([True, True, False, True, False])[:num_videos]}
    return captions, videos, ind


def geu_by_hand(unit: GatedEmbeddingUnit, x: torch.Tensor) -> torch.Tensor:
    """Eval-mode gated embedding unit of one row ``[D_in] -> [D_out]``."""
    hidden = unit.fc.weight @ x + unit.fc.bias
    bn = unit.cg.batch_norm
    gate = unit.cg.fc.weight @ hidden + unit.cg.fc.bias
    gate = (gate - bn.running_mean) / torch.sqrt(bn.running_var + bn.eps) * bn.weight + bn.bias
    gated = hidden * torch.sigmoid(gate)
    return gated / gated.norm()


def score_by_hand(net: MEE, caption: torch.Tensor, video: dict, present: dict) -> torch.Tensor:
    """One caption against one video, straight from the MEE definition."""
    logits = net.moe_fc.weight @ caption + net.moe_fc.bias
    weights = torch.exp(logits) / torch.exp(logits).sum()
    total, norm = torch.zeros(()), torch.zeros(())
    for idx, name in enumerate(net.modalities):
        if present[name]:
            cosine = geu_by_hand(net.text_GU[idx], caption) @ geu_by_hand(net.video_GU[idx], video[name])
            total, norm = total + weights[idx] * cosine, norm + weights[idx]
    return total / norm


def run(net: MEE, captions, videos, ind, conf: bool = True) -> torch.Tensor:
    with torch.no_grad():
        return net(captions, videos, ind, conf=conf)


def test_score_matrix_matches_hand_computation(mee):
    captions, videos, ind = make_batch()
    scores = run(mee, captions, videos, ind)
    assert scores.shape == (3, 5)
    for i in range(3):
        for j in range(5):
            video = {name: feats[j] for name, feats in videos.items()}
            present = {name: bool(mask[j]) for name, mask in ind.items()}
            expected = score_by_hand(mee, captions[i], video, present)
            torch.testing.assert_close(scores[i, j], expected, atol=1e-6, rtol=0)


def test_pairwise_scores_are_the_diagonal(mee):
    captions, videos, ind = make_batch(num_videos=5, num_captions=5)
    pairs = run(mee, captions, videos, ind, conf=False)
    assert pairs.shape == (5,)
    torch.testing.assert_close(pairs, torch.diagonal(run(mee, captions, videos, ind)), atol=1e-6, rtol=0)


@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
@pytest.mark.parametrize("conf", [True, False])
def test_missing_values_never_change_the_output(mee, training, conf):
    captions, videos, ind = make_batch(num_videos=5, num_captions=5)
    mee.train(training)
    outputs = []
    for filler in (0.0, float("nan"), 1e6):
        filled = {name: torch.where(ind[name].reshape(-1, 1).bool(), feats, torch.full_like(feats, filler))
                  for name, feats in videos.items()}
        outputs.append(run(mee, captions, filled, ind, conf))
    assert torch.isfinite(outputs[0]).all()
    for other in outputs[1:]:
        assert torch.equal(outputs[0], other)


def test_inputs_are_not_mutated(mee):
    captions, videos, ind = make_batch()
    videos["face"][1] = float("nan")
    before = copy.deepcopy((captions, videos, ind))
    run(mee, captions, videos, ind)
    run(mee, captions, videos, ind)
    torch.testing.assert_close((captions, videos, ind), before, equal_nan=True, atol=0, rtol=0)


def test_single_available_modality_scores_its_cosine(mee):
    captions, videos, ind = make_batch()
    ind = {name: torch.zeros(5) for name in DIMS}
    ind["audio.vggish"][2] = 1
    ind["face"][[0, 1, 3, 4]] = 1
    with torch.no_grad():
        audio_idx = mee.modalities.index("audio.vggish")
        text = mee.text_GU[audio_idx](captions)
        video = mee.video_GU[audio_idx](videos["audio.vggish"][2:3])
    scores = run(mee, captions, videos, ind)
    torch.testing.assert_close(scores[:, 2], (text @ video.t()).squeeze(1), atol=1e-6, rtol=0)


def test_weights_are_softmax_and_renormalise(mee):
    captions, videos, _ = make_batch()
    weights = mee.moe_weights(captions).detach()
    torch.testing.assert_close(weights.sum(dim=1), torch.ones(3))
    ind = {name: torch.ones(5) for name in DIMS}
    with torch.no_grad():
        text, video = mee.embed_text(captions), mee.embed_videos(videos, ind)
    cosines = torch.stack([text[name] @ video[name].t() for name in mee.modalities], dim=-1)
    expected = (weights.unsqueeze(1) * cosines).sum(dim=-1)
    torch.testing.assert_close(run(mee, captions, videos, ind), expected, atol=1e-6, rtol=0)


def test_invalid_inputs_are_rejected(mee):
    captions, videos, ind = make_batch()
    with pytest.raises(ValueError, match="aligned pairs"):
        run(mee, captions, videos, ind, conf=False)
    with pytest.raises(ValueError, match="missing modalities"):
        run(mee, captions, {k: v for k, v in videos.items() if k != "face"}, ind)
    with pytest.raises(ValueError, match="entries for"):
        run(mee, captions, videos, {**ind, "face": torch.ones(4)})


def test_video_without_any_modality_scores_zero(mee):
    captions, videos, ind = make_batch()
    ind = {name: value.clone().float() for name, value in ind.items()}
    for name in DIMS:
        ind[name][2] = 0
    scores = run(mee, captions, videos, ind)
    assert torch.equal(scores[:, 2], torch.zeros(scores.shape[0]))
    assert torch.isfinite(scores).all()


def test_docstring_example_runs():
    result = doctest.testmod(model.mee)
    assert result.attempted > 0 and result.failed == 0
