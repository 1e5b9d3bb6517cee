"""Golden values: each loss against numbers precomputed independently with numpy (float64)."""
import pytest
import torch
from torch import nn

from edge_kd.distill.losses import LOSSES, FeatureCapture, HintLoss, build_loss
from edge_kd.errors import InputError

S = torch.tensor([[1.0, 2.0, 0.5], [0.2, -1.0, 3.0]], dtype=torch.float64)
T = torch.tensor([[2.0, 1.0, 0.0], [0.0, 0.5, 2.5]], dtype=torch.float64)
Y = torch.tensor([1, 2])
SB = torch.tensor([0.3, -1.2, 2.0], dtype=torch.float64)
TB = torch.tensor([1.0, -0.5, 0.8], dtype=torch.float64)
YB = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)


def test_registry_lists_all_losses():
    assert {"hinton", "mse", "logit_regression", "bce_soft", "ce"} <= set(LOSSES.names())
    with pytest.raises(InputError, match="known: .*hinton"):
        build_loss("hintn")


def test_hinton_golden():
    assert build_loss("hinton", temperature=4.0, alpha=1.0)(S, T, Y).item() == pytest.approx(0.37090791899744846)
    assert build_loss("hinton", temperature=4.0, alpha=0.9)(S, T, Y).item() == pytest.approx(0.3608431251855997)
    assert build_loss("hinton", temperature=4.0, alpha=0.0)(S, T, Y).item() == pytest.approx(0.27025998087896075)
    assert build_loss("hinton")(T, T, None).item() == pytest.approx(0.0, abs=1e-12)


def test_mse_and_logit_regression_golden():
    assert build_loss("mse")(S, T, Y).item() == pytest.approx(0.7983333333333333)
    assert build_loss("mse", alpha=0.5)(S, T, Y).item() == pytest.approx(0.534296657106147)
    lr = build_loss("logit_regression", init_scale=1.5).double()
    assert [n for n, _ in lr.named_parameters()] == ["theta"]
    assert lr(S, T, Y).item() == pytest.approx(2.1504166666666666)
    # theta learns: one gradient step on theta alone lowers the loss
    loss = lr(S, T, Y)
    loss.backward()
    assert lr.theta.grad is not None and lr.theta.grad.item() != 0.0


def test_bce_soft_golden():
    assert build_loss("bce_soft", alpha=0.5)(SB, TB, YB).item() == pytest.approx(0.8404856187354346)
    assert build_loss("bce_soft", alpha=1.0, temperature=2.0)(SB, TB, None).item() == pytest.approx(0.6974480751564771)
    two = torch.stack([torch.zeros_like(SB), SB], 1)  # two-class logits reduce to the same binary logit
    assert build_loss("bce_soft", alpha=0.5)(two, TB[:, None], YB).item() == pytest.approx(0.8404856187354346)


def test_shape_mismatch_is_input_error():
    with pytest.raises(InputError, match="same classes"):
        build_loss("hinton")(S, T[:, :2], Y)
    with pytest.raises(InputError, match="alpha"):
        build_loss("hinton", alpha=1.5)


def test_hint_linear_golden():
    hint = HintLoss.for_features(torch.zeros(2, 2), torch.zeros(2, 3)).double()
    with torch.no_grad():
        hint.proj.weight.copy_(torch.tensor([[1.0, 0.0], [0.5, -1.0], [2.0, 1.0]]))
    sf = torch.tensor([[1.0, 2.0], [-1.0, 0.5]], dtype=torch.float64)
    tf = torch.tensor([[1.0, -1.0, 3.0], [0.0, 0.0, 0.0]], dtype=torch.float64)
    assert hint(sf, tf).item() == pytest.approx(0.9166666666666666)


def test_hint_conv_golden_with_pooling():
    hint = HintLoss.for_features(torch.zeros(1, 2, 2, 2), torch.zeros(1, 1, 1, 1)).double()
    assert isinstance(hint.proj, nn.Conv2d) and hint.proj.kernel_size == (1, 1)
    with torch.no_grad():
        hint.proj.weight.copy_(torch.tensor([0.5, -0.25]).reshape(1, 2, 1, 1))
    x = torch.arange(8, dtype=torch.float64).reshape(1, 2, 2, 2)
    assert hint(x, torch.ones(1, 1, 1, 1, dtype=torch.float64)).item() == pytest.approx(2.640625)


def test_feature_capture_and_unknown_layer():
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    with FeatureCapture(model, ["1"]) as feats:
        model(torch.ones(5, 3))
    assert feats["1"].shape == (5, 4) and bool((feats["1"] >= 0).all())
    enc = nn.Module()
    enc.layer1 = nn.Linear(2, 2)
    enc.layer2 = nn.Linear(2, 2)
    with pytest.raises(InputError, match=r"'layer3' not found in the teacher model; close names: layer1, layer2|layer2, layer1"):
        FeatureCapture(enc, ["layer3"], role="teacher")


# ---- next-purchase ranking losses --------------------------------------------------------------------
def test_next_items_loss_golden():
    from edge_kd.distill.losses import next_items_loss

    scores = torch.tensor([[0.0, 1.0, 2.0], [1.0, 1.0, 1.0]])
    targets = torch.tensor([[2, 0], [1, -1]])
    logp = torch.log_softmax(scores, -1)
    want = (-(logp[0, 2] + logp[0, 0]) / 2 - logp[1, 1]) / 2
    assert float(next_items_loss(scores, targets)) == pytest.approx(float(want))
    assert float(next_items_loss(scores, targets)) == pytest.approx(1.2531, abs=1e-4)  # ((2.4076 + 0.4076) / 2 + ln 3) / 2


def test_listwise_kd_loss_mixes_teacher_kl_and_next_items():
    from edge_kd.distill.losses import LOSSES, build_loss, next_items_loss

    s = torch.tensor([[0.0, 1.0, 2.0]])
    t = torch.tensor([[2.0, 0.0, 0.0]])
    y = torch.tensor([[1, -1]])
    T = 2.0
    kl = torch.nn.functional.kl_div(torch.log_softmax(s / T, -1), torch.log_softmax(t / T, -1), reduction="batchmean",
                                    log_target=True) * T * T
    loss = build_loss("listwise", temperature=T, alpha=0.25)
    assert float(loss(s, t, y)) == pytest.approx(float(0.25 * kl + 0.75 * next_items_loss(s, y)))
    assert float(build_loss("listwise", temperature=T, alpha=1.0)(s, t, y)) == pytest.approx(float(kl))
    assert float(build_loss("listwise", alpha=1.0)(t, t, y)) == pytest.approx(0.0, abs=1e-7)
    # the raw-next-items baseline is a hard-label loss: the trainer needs no teacher outputs for it
    from edge_kd.distill.trainer import _is_hard_label

    assert _is_hard_label(LOSSES.get("next_items")()) and not _is_hard_label(loss)
def test_regression_kd_golden():
    """Huber (beta = delta) toward alpha * teacher + (1 - alpha) * label, in the label's unit."""
    loss = build_loss("regression_kd", alpha=0.5, delta=1.0)
    s = torch.tensor([[10.0], [4.0]])
    t = torch.tensor([[12.0], [4.2]])
    y = torch.tensor([6.0, 4.0])
    # targets 9.0 and 4.1: |1.0| -> 0.5 * 1^2 = 0.5 (at the kink), |0.1| -> 0.5 * 0.01 = 0.005; mean 0.2525
    assert loss(s, t, y).item() == pytest.approx(0.2525)
    # alpha 0 = raw targets only (no teacher needed); alpha 1 = the teacher only (no labels needed)
    assert build_loss("regression_kd", alpha=0.0)(s, None, y).item() == pytest.approx((3.5 + 0.0) / 2)
    assert build_loss("regression_kd", alpha=1.0)(s, t, None).item() == pytest.approx((1.5 + 0.02) / 2)
    with pytest.raises(InputError, match="needs the teacher"):
        loss(s, None, y)
    with pytest.raises(InputError, match="delta must be > 0"):
        build_loss("regression_kd", delta=0)
