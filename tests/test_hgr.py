"""HGR: outputs equal the original code's, the original checkpoint layout loads, blockwise
scoring equals unblocked scoring, role graphs and frames are read as the original reads them,
and the EK-100 configuration has the spec's size."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import REPO

from base.role_graph_text import RoleGraphText
from data_loader.batches import select_frames
from data_loader.hgr.graph_store import encode_captions
from data_loader.hgr.role_graphs import EOS, ROLE_IDS, UNK, graph_arrays, tokenise
from model.hgr.checkpoint import from_original, to_original
from model.hgr.hgr import HGR, HGRConfig
from model.hgr.matching import TextEmbeds, VideoEmbeds, fused, level_scores, level_scores_blocked
from model.ranp.losses import ContrastiveLoss, RANLoss
from trainer.build import build_model
from trainer.checkpoints.hgr import init_from_original, load_original_hgr
from trainer.checkpoints.safe_load import safe_load
from utils.config.load import load_config
from utils.errors import CheckpointError, StoreError

# Computed by the original HGR code (cshizhe/hgr_v2t 13d2d74: MultilevelEncoder, RoleGraphEncoder
# with gcn_attention, RoleGraphMatchModel.generate_scores) in eval mode on random weights
# (perturbed from their initialisation) and random inputs: 5 videos of up to 6 frames of 24-d,
# 7 captions of up to 9 words, embeddings of 32, 40 words of 12-d.
REFERENCE = REPO / "tests" / "data" / "hgr_reference.pth"


def tiny_model(**overrides) -> HGR:
    args = {"feat_dims": {"rgb": 16, "flow": 8}, "num_words": 40, "dim_embed": 32, "rnn_hidden_size": 32,
            "dim_word": 12, **overrides}
    return HGR(HGRConfig(**args)).eval()


def reference_inputs(ref: dict) -> tuple[dict, dict, RoleGraphText]:
    inputs = ref["inputs"]
    frames, lengths = inputs["frames"], inputs["lengths"].float()
    experts = {"rgb": frames[..., :16], "flow": frames[..., 16:]}
    text = RoleGraphText(inputs["sent_ids"], inputs["sent_lens"], inputs["verb_masks"], inputs["noun_masks"],
                         inputs["node_roles"], inputs["rel_edges"])
    return experts, {"rgb": lengths, "flow": lengths}, text


def test_forward_equals_the_original_code_on_its_checkpoint_layout():
    ref = safe_load(REFERENCE)
    model = tiny_model()
    model.load_state_dict(from_original(ref["weights"]))
    experts, ind, text = reference_inputs(ref)
    with torch.no_grad():
        out = model(experts, ind, text)
        nodes = model.text_embeds(text)
    for level in ("global", "verb", "noun"):
        torch.testing.assert_close(out["level_similarities"][level].t(), ref["scores"][level], rtol=0, atol=1e-6)
    for kind in ("sent", "verb", "noun"):
        torch.testing.assert_close(getattr(nodes, kind), ref["nodes"][kind], rtol=0, atol=1e-6)
    expected = (ref["scores"]["global"] + ref["scores"]["verb"] + ref["scores"]["noun"]) / 3
    torch.testing.assert_close(out["cross_view_conf_matrix"].t(), expected, rtol=0, atol=1e-6)


def test_a_checkpoint_saved_in_the_original_layout_loads_and_scores_the_same(tmp_path):
    torch.manual_seed(0)
    source = tiny_model()
    path = tmp_path / "epoch.3.th"
    torch.save(to_original(source.state_dict()), path)
    loaded = tiny_model()
    loaded.load_state_dict(load_original_hgr(path))
    experts, ind, text = reference_inputs(safe_load(REFERENCE))
    with torch.no_grad():
        assert torch.equal(source(experts, ind, text)["cross_view_conf_matrix"],
                           loaded(experts, ind, text)["cross_view_conf_matrix"])
    nested = torch.load(path, weights_only=True)
    assert set(nested) == {"video_encoder", "text_encoder"}
    assert "embedding.we.weight" in nested["text_encoder"] and "level_embeds.2.bias" in nested["video_encoder"]


def test_a_glove_checkpoint_initialises_the_word_embeddings_only(tmp_path):
    model = tiny_model()
    glove = torch.randn(40, 12)
    torch.save({"text_encoder": {"embedding.we.weight": glove}}, tmp_path / "glove.th")
    before = model.video_encoder.ft_attn.weight.clone()
    assert init_from_original(model, tmp_path / "glove.th") == ["text_encoder.embedding.we.weight"]
    assert torch.equal(model.text_encoder.embedding.we.weight.detach(), glove)
    assert torch.equal(model.video_encoder.ft_attn.weight, before)
    torch.save({"text_encoder": {"embedding.we.weight": torch.randn(41, 12)}}, tmp_path / "other.th")
    with pytest.raises(CheckpointError, match="num_words"):
        init_from_original(model, tmp_path / "other.th")
    torch.save({"state_dict": {}}, tmp_path / "ce.th")
    with pytest.raises(CheckpointError, match="not an HGR checkpoint"):
        load_original_hgr(tmp_path / "ce.th")


def test_blockwise_scores_equal_unblocked_scores():
    torch.manual_seed(0)
    lengths = torch.tensor([5, 1, 7, 7, 3, 2, 6])
    video = VideoEmbeds(torch.randn(7, 16), torch.randn(7, 7, 16), torch.randn(7, 7, 16), lengths)
    text = TextEmbeds(torch.randn(11, 16), torch.randn(11, 4, 16), torch.randn(11, 6, 16),
                      torch.tensor([1, 0, 2, 4, 1, 1, 3, 2, 1, 0, 1]), torch.tensor([2, 6, 0, 1, 3, 1, 1, 2, 5, 0, 4]))
    whole = fused(level_scores(video, text, 4.0))
    # a budget of one (video, caption) pair per block, then one that splits captions unevenly
    for budget in (1, 3 * 6 * 16 * 4):
        torch.testing.assert_close(level_scores_blocked(video, text, 4.0, budget_bytes=budget), whole,
                                   rtol=0, atol=1e-6)


def test_similarity_scores_every_caption_against_every_video_in_caption_rows():
    torch.manual_seed(0)
    model = tiny_model(eval_block_mib=0)
    experts, ind, text = reference_inputs(safe_load(REFERENCE))
    with torch.no_grad():
        training = model(experts, ind, text)["cross_view_conf_matrix"]
        vids = model.embed_videos(experts, ind)
        caps, weights = model.embed_text(text)
        blocked = model.similarity(caps, weights, vids, ind)
    assert blocked.shape == (7, 5) and weights.shape == (7, 0)
    torch.testing.assert_close(blocked, training, rtol=0, atol=1e-6)


def test_role_graphs_become_the_original_node_arrays():
    nodes = {"ROOT": {"role": "ROOT", "spans": [], "words": []},
             "1": {"role": "V", "spans": [1], "words": ["cuts"]},
             "2": {"role": "ARG0", "spans": [0], "words": ["man"]},
             "3": {"role": "C-ARG1", "spans": [2, 3], "words": ["the", "onion"]},
             "4": {"role": "V", "spans": [5], "words": ["fries"]},
             "5": {"role": "WEIRD", "spans": [6], "words": ["it"]},
             "6": {"role": "ARGM-LOC", "spans": [9], "words": ["past"]}}
    edges = [["1", "2", "ARG0"], ["1", "3", "ARG1"], ["4", "5", "WEIRD"], ["4", "6", "ARGM-LOC"]]
    arrays = graph_arrays([nodes, edges], "man cuts the onion and fries it", max_words=8, num_verbs=4,
                          num_nouns=6)
    assert arrays.verb_masks[0].nonzero()[0].tolist() == [1] and arrays.verb_masks[1].nonzero()[0].tolist() == [5]
    assert not arrays.verb_masks[2:].any()
    assert [m.nonzero()[0].tolist() for m in arrays.noun_masks[:3]] == [[0], [2, 3], [6]]
    assert not arrays.noun_masks[3:].any()  # node 6 starts past max_words
    assert arrays.node_roles.tolist()[:2] == [ROLE_IDS["V"]] * 2
    assert arrays.node_roles.tolist()[4:7] == [ROLE_IDS["ARG0"], ROLE_IDS["ARG1"], ROLE_IDS["NOUN"]]
    rel = arrays.rel_edges  # [target, source]: root -> verbs, verb <-> argument, rows normalised
    third = np.float32(1) / np.float32(3)
    assert rel[1].nonzero()[0].tolist() == [0, 5, 6] and (rel[1][[0, 5, 6]] == third).all()
    assert rel[2].nonzero()[0].tolist() == [0, 7] and rel[2, 0] == rel[2, 7] == 0.5
    assert rel[5, 1] == rel[6, 1] == rel[7, 2] == 1.0 and rel[5:8].sum() == 3
    assert rel[0].sum() == 0 and rel[3].sum() == 0


def test_captions_are_tokenised_as_the_original_and_must_have_a_role_graph():
    word2int = {"a": 3, "dog": 4}
    assert tokenise("a dog barks", word2int, 30).tolist() == [3, 4, UNK]
    assert tokenise("a dog a dog", word2int, 3).tolist() == [3, 4, 3]
    graph = [{"1": {"role": "V", "spans": [2], "words": ["barks"]}}, []]
    arrays = encode_captions(["a dog barks"], {"a dog barks": graph}, word2int, max_words=5)
    assert arrays["sent_ids"].tolist() == [[3, 4, UNK, EOS, EOS]] and arrays["sent_lens"].tolist() == [3]
    with pytest.raises(StoreError, match="no role graph for caption 'a cat'"):
        encode_captions(["a dog barks", "a cat"], {"a dog barks": graph}, word2int, source="graphs.json")


def test_frames_are_selected_as_the_original_trims_and_pads():
    lengths = [25, 20, 7, 33, 1]
    offsets = torch.tensor(np.concatenate([[0], np.cumsum(lengths)]))
    values = torch.arange(sum(lengths), dtype=torch.float32)[:, None].repeat(1, 3)
    frames, kept = select_frames(values, offsets, torch.tensor([3, 0, 1, 2, 4]), 20)
    assert kept.tolist() == [20, 20, 20, 7, 1]
    for out, row in zip(frames, [3, 0, 1, 2, 4]):
        own = values[offsets[row]:offsets[row + 1]].numpy()
        if len(own) >= 20:
            expected = own[np.round(np.linspace(0, len(own) - 1, 20)).astype(np.int32)]
        else:
            expected = np.concatenate([own, np.zeros((20 - len(own), 3), np.float32)])
        assert np.array_equal(out.numpy(), expected)


@pytest.mark.slow
def test_the_ek100_configuration_has_the_spec_size():
    config = load_config(REPO / "configs" / "epic-kitchens-100" / "hgr.json", [])
    with torch.device("meta"):
        model = build_model(config)
    video = sum(p.numel() for p in model.video_encoder.parameters())
    text = sum(p.numel() for n, p in model.text_encoder.named_parameters() if not n.startswith("embedding."))
    assert (video, text) == (9_441_281, 10_264_577)  # spec section 4, instantiated from the original encoders
    total = sum(p.numel() for p in model.parameters())
    spec_total = 9_441_281 + 10_264_577 + 500_000  # "word embedding: V x 300, about 0.5M" for ~1.7k words
    assert abs(total - spec_total) / spec_total < 0.01


def test_the_baseline_loss_is_vse_without_relevance():
    torch.manual_seed(0)
    sims, relevance = torch.rand(6, 6), torch.rand(6, 6)
    relevance.fill_diagonal_(1)
    loss = ContrastiveLoss(margin=0.2)
    assert not loss.needs_relevance
    expected = RANLoss(margin=0.2, threshold_pos=2.0)(sims, relevance)  # no pair reaches the threshold
    assert torch.equal(loss(sims), expected)
    assert torch.equal(loss.batch_parts(sims.t(), relevance)["loss"], expected)
    assert loss(sims) > RANLoss(margin=0.2, threshold_pos=0.5)(sims, relevance)
