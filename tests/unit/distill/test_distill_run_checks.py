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


def test_text_auto_keeps_the_best_validation_metric_or_the_smallest_within_the_drop():
    from types import SimpleNamespace as NS

    from edge_kd.distill.run import _choose_family

    def fit(name, val, size, within=None):
        objective = {} if within is None else {"within_drop": within}
        return {"name": name, "result": NS(best_metric=val, metric="accuracy"), "decision": NS(bundle_bytes=size),
                "objective": objective}

    fits = [fit("text_hashed", 0.90, 900), fit("text_wordpiece", 0.91, 1000)]
    assert _choose_family(fits, "best-under-budget")["name"] == "text_wordpiece"
    assert _choose_family([fit("a", 0.9, 1), fit("b", 0.9, 2)], "best-under-budget")["name"] == "a"  # tie: first
    within = [fit("text_hashed", 0.90, 900, True), fit("text_wordpiece", 0.91, 1000, True)]
    assert _choose_family(within, "smallest-within-drop")["name"] == "text_hashed"
    missed = [fit("text_hashed", 0.80, 900, False), fit("text_wordpiece", 0.85, 1000, False)]
    assert _choose_family(missed, "smallest-within-drop")["name"] == "text_wordpiece"
    wape = [{"name": n, "result": NS(best_metric=v, metric="wape"), "decision": NS(bundle_bytes=1), "objective": {}}
            for n, v in (("a", 0.3), ("b", 0.2))]
    assert _choose_family(wape, "best-under-budget")["name"] == "b"  # lower is better
