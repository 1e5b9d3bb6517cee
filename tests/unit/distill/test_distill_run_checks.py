"""Bad input caught before training: teacher/label mismatches, recipe loss choices."""
import types

import numpy as np
import pytest

from edge_kd.distill.run import build_recipe_loss, check_teacher_labels
from edge_kd.errors import InputError


def _ds(names, task="classification"):
    return types.SimpleNamespace(num_classes=len(names), label_names=list(names), task=task)


def test_teacher_output_count_must_match_labels():
    with pytest.raises(InputError, match="teacher outputs 3 classes but the data has 4 labels"):
        check_teacher_labels(types.SimpleNamespace(label_names=[]), _ds("abcd"), np.zeros((5, 3)))
    check_teacher_labels(types.SimpleNamespace(label_names=[]), _ds("ab", "binary"), np.zeros((5, 1)))


def test_labels_the_teacher_does_not_know():
    teacher = types.SimpleNamespace(label_names=["refund", "track", "cancel"])
    with pytest.raises(InputError, match="labels in the data that the teacher does not know: upgrade"):
        check_teacher_labels(teacher, _ds(["refund", "track", "upgrade"]), np.zeros((5, 3)))
    with pytest.raises(InputError, match="label order differs"):
        check_teacher_labels(teacher, _ds(["track", "refund", "cancel"]), np.zeros((5, 3)))


def test_recipe_losses():
    loss = build_recipe_loss(("hinton",), 3.0, 0.7, "classification")
    assert loss.temperature == 3.0 and loss.alpha == 0.7
    both = build_recipe_loss(("hinton", "logit_regression"), 3.0, 0.7, "classification")
    assert len(list(both.parameters())) == 1  # theta of logit_regression
    with pytest.raises(InputError, match="unknown KD loss 'hintn'"):
        build_recipe_loss(("hintn",), 3.0, 0.7, "classification")


def test_text_auto_keeps_the_default_family_unless_another_is_better_beyond_noise():
    from types import SimpleNamespace as NS

    from edge_kd.distill.run import _choose_family

    def fit(name, correct=None, val=0.9, size=1000, within=None, metric="accuracy"):
        objective = {} if within is None else {"within_drop": within}
        c = None if correct is None else np.asarray(correct, dtype=bool)
        return {"name": name, "result": NS(best_metric=val if c is None else float(c.mean()), metric=metric),
                "decision": NS(bundle_bytes=size), "objective": objective, "val_correct": c}

    base = [True] * 900 + [False] * 100
    a_few_more = [False] * 3 + [True] * 905 + [False] * 92  # 8 wins, 3 losses: a tie, the default stays
    many_more = [True] * 960 + [False] * 40         # 60 wins, 0 losses: significant
    fits = [fit("text_hashed", base), fit("text_wordpiece", a_few_more)]
    assert _choose_family(fits, "best-under-budget")["name"] == "text_hashed"
    fits = [fit("text_hashed", base), fit("text_wordpiece", many_more)]
    assert _choose_family(fits, "best-under-budget")["name"] == "text_wordpiece"
    # without per-row correctness (another metric), the better metric decides; lower WAPE is better
    assert _choose_family([fit("a", val=0.3, metric="wape"), fit("b", val=0.2, metric="wape")],
                          "best-under-budget")["name"] == "b"
    # smallest-within-drop: the smaller bundle among those within the drop, else the rule above
    within = [fit("text_hashed", base, size=900, within=True), fit("text_wordpiece", many_more, size=1000, within=True)]
    assert _choose_family(within, "smallest-within-drop")["name"] == "text_hashed"
    missed = [fit("text_hashed", base, within=False), fit("text_wordpiece", many_more, within=False)]
    assert _choose_family(missed, "smallest-within-drop")["name"] == "text_wordpiece"


def test_significantly_more_correct_counts_only_the_rows_that_differ():
    from edge_kd.metrics import significantly_more_correct

    a = np.array([True] * 10 + [False] * 90)
    assert significantly_more_correct(a, np.zeros(100, bool))            # 10 wins, 0 losses: 10 > 2 sqrt(10)
    assert not significantly_more_correct(np.zeros(100, bool), a)
    assert not significantly_more_correct(a, a)                          # no row differs
    b = np.array([False] * 4 + [True] * 6 + [True] * 3 + [False] * 87)  # 4 wins, 3 losses for a
    assert not significantly_more_correct(a, b)
