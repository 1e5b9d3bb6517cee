from pathlib import Path

import pytest

from edge_kd.errors import ConfigError, InputError
from edge_kd.recipe import Recipe, load_recipe, load_splits, recipe_from_dict

REPO = Path(__file__).resolve().parents[2]
FIX = REPO / "tests" / "fixtures"
EXAMPLES = sorted((REPO / "examples").glob("*.toml"))

GOOD = """
name = "t"
target = "ort-mobile"
[teacher]
name = "minilm-l6"
options = { max_len = 32 }
[teacher.finetune]
epochs = 5
[data]
train = "csv:data/intents.csv?text=instruction&label=intent"
[student]
family = "text_hashed"
[distill]
temperature = 2.0
[prune]
enabled = true
goal = "params"
amount = 0.25
[quantize]
method = "percentile"
percentile = 99.9
calibration_samples = 16
"""


def _write(tmp_path, text, name="r.toml"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_examples_load(tmp_path):
    assert {p.name for p in EXAMPLES} >= {"intent_bitext.toml", "intent_banking77.toml", "product_image_grocery.toml",
                                          "purchase_online_shoppers.toml", "ctr_criteo.toml"}
    for path in EXAMPLES:
        r = load_recipe(path, shared_data=tmp_path / "shared")
        assert isinstance(r, Recipe) and r.source == str(path)
        assert "${" not in r.data.train
    grocery = load_recipe(REPO / "examples" / "product_image_grocery.toml", shared_data="/data")
    assert grocery.data.test == "images:/data/grocery-store?split=test&label=fine&size=192"
    assert grocery.teacher.options["image_size"] == 192 and grocery.teacher.finetune.unfreeze_last == "all"
    assert grocery.prune.enabled and grocery.prune.steps > 1 and grocery.student.family == "teacher"
    assert grocery.prune.final_epochs > grocery.prune.finetune_epochs


def test_bundled_example_runs_without_shared_data(tmp_path):
    r = load_recipe(REPO / "examples" / "intent_bitext.toml", shared_data=tmp_path / "absent")
    s = load_splits(r.data)
    assert (len(s.train), len(s.val), len(s.test)) == (3161, 452, 901)
    assert s.train.num_classes == 27


def test_good_recipe_fields_and_relative_paths(tmp_path):
    r = load_recipe(_write(tmp_path, GOOD))
    assert r.teacher.options == {"max_len": 32} and r.teacher.finetune.epochs == 5
    assert r.data.train == f"csv:{tmp_path}/data/intents.csv?text=instruction&label=intent"
    assert r.distill.temperature == 2.0 and r.distill.losses == ("hinton",)
    assert r.prune.goal == "params" and r.quantize.method == "percentile"
    d = r.to_dict()
    assert d["source"] == str(tmp_path / "r.toml") and d["prune"]["amount"] == 0.25


def test_shared_data_variable_and_env(tmp_path, monkeypatch):
    text = GOOD.replace("csv:data/intents.csv", "csv:${shared_data}/x.csv")
    p = _write(tmp_path, text)
    assert load_recipe(p, shared_data="/d").data.train.startswith("csv:/d/x.csv?")
    monkeypatch.setenv("EDGE_KD_SHARED_DATA", "/env-data")
    assert load_recipe(p).data.train.startswith("csv:/env-data/x.csv?")


@pytest.mark.parametrize("change, message", [
    (("[distill]\ntemperature = 2.0", "[distill]\ntemprature = 2.0"),
     "'distill.temprature': unknown key (did you mean 'distill.temperature'?)"),
    (("temperature = 2.0", "temperature = \"hot\""), "'distill.temperature': expected a number"),
    (("temperature = 2.0", "temperature = -1.0"), "'distill': temperature must be > 0"),
    (("amount = 0.25", "amount = 2.5"), "'prune': amount is the fraction of params to remove"),
    (("amount = 0.25", "amount = 0.25\nstep_sizes = \"linear\""), "'prune.step_sizes': expected one of"),
    (("method = \"percentile\"", "method = \"kl\""), "'quantize.method': expected one of"),
    (("method = \"percentile\"", "method = \"percentile\"\neval_samples = -1"),
     "'quantize': eval_samples must be an integer >= 0 (0 = every validation row)"),
    (("family = \"text_hashed\"", ""), "'student.family': required key is missing"),
    (("name = \"minilm-l6\"", "name = \"minilm-l6\"\npath = \"saved\""), "give exactly one of 'name'"),
    (("target = \"ort-mobile\"", "target = \"iphone\""), "'target': unknown target 'iphone'"),
    (("name = \"minilm-l6\"", "name = \"minilm\""), "'teacher': unknown teacher 'minilm'; known: efficientnet-lite0"),
    (("csv:data/intents.csv", "sql:data/intents.csv"), "KIND one of csv, images"),
    (("csv:data/intents.csv", "csv:${data}/intents.csv"), "'data.train': unknown variable ${data}"),
])
def test_bad_recipes_name_file_and_key(tmp_path, change, message):
    old, new = change
    assert old in GOOD
    p = _write(tmp_path, GOOD.replace(old, new, 1))
    with pytest.raises(ConfigError) as info:
        load_recipe(p)
    assert str(info.value).startswith(str(p)), str(info.value)
    assert message in str(info.value), str(info.value)


def test_not_toml_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_recipe(_write(tmp_path, "name = [unclosed"))
    with pytest.raises(InputError, match="recipe file does not exist"):
        load_recipe(tmp_path / "none.toml")


def test_load_splits_given_test_uses_train_labels(tmp_path):
    import csv

    rows = list(csv.reader(open(FIX / "intents_small.csv")))
    head, body = rows[0], rows[1:]
    test_rows = [r for r in body if r[1] in ("track_order", "get_refund")][:4]
    with open(tmp_path / "test.csv", "w", newline="") as f:
        csv.writer(f).writerows([head, *test_rows])
    r = recipe_from_dict({"name": "x", "teacher": {"name": "minilm-l6"}, "student": {"family": "f"},
                          "data": {"train": f"csv:{FIX}/intents_small.csv?text=instruction&label=intent",
                                   "test": "csv:test.csv?text=instruction&label=intent", "val_fraction": 0.2}},
                         source=tmp_path / "r.toml")
    s = load_splits(r.data)
    assert s.test.label_names == s.train.label_names and s.test.num_classes == 4
    assert (len(s.train), len(s.val), len(s.test)) == (32, 8, 4)


def test_load_splits_tabular_fits_on_train():
    r = recipe_from_dict({"name": "x", "teacher": {"name": "tabular-mlp"}, "student": {"family": "f"},
                          "data": {"train": f"tabular:{FIX}/shoppers_small.csv?label=Revenue&categorical=Month"}})
    s = load_splits(r.data)
    assert s.val.preprocessor is s.train.preprocessor
    assert s.train.class_counts().tolist() == [23, 6]  # 70% of 32 / 8 per class; ties round up train


def test_teacher_from_recipe_trains_tabular_teacher():
    from edge_kd.recipe import teacher_from_recipe

    r = recipe_from_dict({"name": "x", "student": {"family": "tabular_mlp"},
                          "teacher": {"name": "tabular-mlp", "options": {"hidden": [8]},
                                      "finetune": {"epochs": 2, "batch_size": 8}},
                          "data": {"train": f"tabular:{FIX}/shoppers_small.csv?label=Revenue&categorical=Month"}})
    s = load_splits(r.data)
    teacher = teacher_from_recipe(r.teacher, s)
    assert teacher.name == "tabular-mlp" and teacher.metrics["epochs"] <= 2
    assert teacher.spec.kwargs["hidden"] == [8]
    assert teacher.predict(s.test).shape == (len(s.test), 2)


def test_student_objective_default_and_unknown_value(tmp_path, capsys):
    base = {"name": "x", "teacher": {"name": "tabular-mlp"},
            "data": {"train": f"tabular:{FIX}/shoppers_small.csv?label=Revenue&categorical=Month"}}
    assert recipe_from_dict({**base, "student": {"family": "tabular_mlp"}}).student.objective == "best-under-budget"
    r = recipe_from_dict({**base, "student": {"family": "tabular_mlp", "objective": "smallest-within-drop"}})
    assert r.student.objective == "smallest-within-drop"
    with pytest.raises(ConfigError, match=r"objective = 'tiniest' is unknown; known: best-under-budget, "
                                          r"smallest-within-drop"):
        recipe_from_dict({**base, "student": {"family": "tabular_mlp", "objective": "tiniest"}})
    # through the CLI: one line, exit 2, naming the key
    from edge_kd.cli import main

    path = tmp_path / "r.toml"
    path.write_text(f'name = "x"\n[teacher]\nname = "tabular-mlp"\n[data]\n'
                    f'train = "tabular:{FIX}/shoppers_small.csv?label=Revenue&categorical=Month"\n'
                    f'[student]\nfamily = "tabular_mlp"\nobjective = "tiniest"\n')
    assert main(["build", str(path), "--target", "ort-mobile", "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert "objective = 'tiniest'" in err and "Traceback" not in err


def test_student_init_transfer_and_unlabeled_keys(tmp_path, capsys):
    base = {"name": "x", "teacher": {"name": "minilm-l6"}, "student": {"family": "text_hashed"},
            "data": {"train": f"csv:{FIX}/intents_small.csv?text=instruction&label=intent"}}
    r = recipe_from_dict(base)
    assert r.student.init == "auto" and r.data.unlabeled is None
    assert r.distill.transfer.enabled and r.distill.transfer.augment_copies == 2
    r = recipe_from_dict({**base, "data": {**base["data"], "unlabeled": "csv:queries.csv?text=q"},
                          "distill": {"transfer": {"augment_copies": 0, "max_rows": 10}}}, source=tmp_path / "r.toml")
    assert r.data.unlabeled == f"csv:{tmp_path / 'queries.csv'}?text=q"  # relative to the recipe
    assert (r.distill.transfer.augment_copies, r.distill.transfer.max_rows) == (0, 10)
    with pytest.raises(ConfigError, match="init = 'pretrained' is unknown; known: auto, teacher, random"):
        recipe_from_dict({**base, "student": {"family": "text_hashed", "init": "pretrained"}})
    for bad in ("csv:q.csv", "tabular:q.csv?label=y", "csv:q.csv?text=q&label=y"):
        with pytest.raises(ConfigError, match="unlabeled text is csv:PATH\\?text=COLUMN"):
            recipe_from_dict({**base, "data": {**base["data"], "unlabeled": bad}})
    with pytest.raises(ConfigError, match="transfer"):
        recipe_from_dict({**base, "distill": {"transfer": {"copies": 2}}})
    # through the CLI: one line, exit 2
    from edge_kd.cli import main

    path = tmp_path / "bad.toml"
    path.write_text(f'name = "x"\n[teacher]\nname = "minilm-l6"\n[data]\n'
                    f'train = "csv:{FIX}/intents_small.csv?text=instruction&label=intent"\nunlabeled = "csv:q.csv"\n'
                    f'[student]\nfamily = "text_hashed"\n')
    assert main(["build", str(path), "--target", "ort-mobile", "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert "unlabeled" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_recipe_budgets_tighten_each_target_and_are_recorded(tmp_path):
    from edge_kd.stages.runner import plan_build
    from edge_kd.targets import load_target

    text = GOOD + '[budgets]\nartifact_size = "1MiB"\naccuracy_drop = "0.5pt"\n'
    p = _write(tmp_path, text)
    r = load_recipe(p)
    assert r.budgets.artifact_size == 1 << 20 and str(r.budgets.accuracy_drop) == "0.5pt"
    assert r.to_dict()["budgets"]["artifact_size"] == 1 << 20
    plan = plan_build(p, ["ort-mobile", "tflite-int8"], tmp_path / "out")
    for profile in plan.targets:
        stock = load_target(profile.name).budgets
        assert profile.budgets.artifact_size == 1 << 20 and profile.budgets.accuracy_drop.value == 0.005
        assert profile.budgets.download_size == stock.download_size  # not given: the profile's
        assert profile.to_dict()["budgets"]["artifact_size"] == 1 << 20  # what build.json records
    # Without [budgets] the profiles are untouched.
    plain = plan_build(_write(tmp_path, GOOD, "plain.toml"), ["ort-mobile"], tmp_path / "out2")
    assert plain.targets[0].budgets == load_target("ort-mobile").budgets


@pytest.mark.parametrize("line, key, words", [
    ('artifact_size = "100MiB"', "budgets.artifact_size", "looser than the target 'ort-mobile'"),
    ('accuracy_drop = "2%"', "budgets.accuracy_drop", "not a tighter absolute drop"),
    ('latency_p90 = "-3ms"', "budgets.latency_p90", "must not be negative"),
    ('artifact_sise = "1MiB"', "budgets.artifact_sise", "did you mean 'budgets.artifact_size'"),
])
def test_recipe_budgets_may_only_tighten(tmp_path, line, key, words):
    from edge_kd.stages.runner import plan_build

    p = _write(tmp_path, GOOD + f"[budgets]\n{line}\n")
    with pytest.raises(ConfigError) as info:
        plan_build(p, ["ort-mobile"], tmp_path / "out")
    message = str(info.value)
    assert message.startswith(str(p)) and f"'{key}'" in message and words in message, message
