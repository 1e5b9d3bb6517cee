"""A recipe's latency goal: ``amount`` a fraction of the unpruned latency or a duration; bad ones name the key."""
import pytest

from edge_kd.errors import ConfigError
from edge_kd.recipe import load_recipe

RECIPE = """
name = "t"
target = "ort-mobile"
[teacher]
name = "minilm-l6"
[data]
train = "csv:data/intents.csv?text=instruction&label=intent"
[student]
family = "text_hashed"
[prune]
enabled = true
goal = "{goal}"
amount = {amount}
"""


@pytest.mark.parametrize("amount,expected", [("0.5", (0.5, "fraction")), ('"12ms"', (12.0, "ms")),
                                             ('"0.5s"', (500.0, "ms"))])
def test_latency_amount_fraction_or_duration(tmp_path, amount, expected):
    p = tmp_path / "r.toml"
    p.write_text(RECIPE.format(goal="latency", amount=amount))
    assert load_recipe(p).prune.latency_budget() == expected


@pytest.mark.parametrize("goal,amount,message", [
    ("latency", "1.5", "fraction of the unpruned latency to keep, in (0, 1)"),
    ("latency", "0", "fraction of the unpruned latency to keep, in (0, 1)"),
    ("latency", '"12"', "expected a duration with a unit"),
    ("latency", '"-3ms"', "must not be negative"),
    ("macs", '"12ms"', "amount is the fraction of macs to remove and must be a number in (0, 1)"),
])
def test_bad_latency_amount_names_the_key(tmp_path, goal, amount, message):
    p = tmp_path / "r.toml"
    p.write_text(RECIPE.format(goal=goal, amount=amount))
    with pytest.raises(ConfigError) as info:
        load_recipe(p)
    assert "'prune'" in str(info.value) and message in str(info.value), str(info.value)
