"""``[bench] gate_latency = "emulated"``: the gate holds the ARM cost-model estimate (edge_kd.emulate) to
the latency budget instead of the host p90, and fails closed when the build recorded none."""
from __future__ import annotations

import json

import pytest

from edge_kd.errors import ConfigError
from edge_kd.gate import evaluate
from edge_kd.targets import TargetProfile, load_target


def _emulating(build, gate_latency="emulated"):
    data = json.loads((build / "build.json").read_text())["target"]
    data["bench"] = {**data.get("bench", {}), "emulate": "cortex-a76", "gate_latency": gate_latency}
    return TargetProfile.from_dict(data)


def _record_estimate(fx, build, ms):
    fx.edit_manifest(build, lambda m: m["metrics"].update(
        emulated={"core": "cortex-a76", "instructions": 3_200_000, "estimate_ms": ms}))


def test_the_arm_estimate_replaces_the_host_p90(make_build, fx):
    build = make_build(latency=(10.0, 12.5, 14.0))          # host p90 over the 12 ms budget
    _record_estimate(fx, build, 4.25)
    lat = evaluate(build, target=_emulating(build)).check("latency.p90")
    assert lat.passed and lat.value == 4.25 and lat.limit == 12.0
    assert "cortex-a76" in lat.reason and "3.20 M instructions" in lat.reason
    assert not evaluate(build, target=_emulating(build, "host")).check("latency.p90").passed


def test_an_estimate_over_budget_fails(make_build, fx):
    build = make_build()
    _record_estimate(fx, build, 13.0)
    lat = evaluate(build, target=_emulating(build)).check("latency.p90")
    assert not lat.passed and "1.00 ms over" in lat.reason


def test_no_recorded_estimate_fails_closed(make_build):
    build = make_build()
    lat = evaluate(build, target=_emulating(build)).check("latency.p90")
    assert not lat.passed and lat.value is None
    assert "metrics.emulated.estimate_ms is not recorded" in lat.reason


def test_gate_latency_emulated_needs_a_core(tmp_path):
    path = tmp_path / "p.toml"
    path.write_text('extends = "ort-mobile"\n[bench]\ngate_latency = "emulated"\n')
    with pytest.raises(ConfigError, match="needs bench.emulate"):
        load_target(path)
    path.write_text('extends = "ort-mobile"\n[bench]\ngate_latency = "phone"\n')
    with pytest.raises(ConfigError, match="gate_latency"):
        load_target(path)


def test_ship_latency_follows_the_emulated_core_unless_the_profile_says_host(tmp_path):
    path = tmp_path / "p.toml"
    assert load_target("ort-mobile").ship_core is None                      # nothing emulated: the host decides
    path.write_text('extends = "ort-mobile"\n[bench]\nemulate = "cortex-a75"\n')
    assert load_target(path).ship_core == "cortex-a75"                     # auto: the phone's core decides
    path.write_text('extends = "ort-mobile"\n[bench]\nemulate = "cortex-a75"\n[quantization]\nship_latency = "host"\n')
    assert load_target(path).ship_core is None
    path.write_text('extends = "ort-mobile"\n[quantization]\nship_latency = "emulated"\n')
    with pytest.raises(ConfigError, match="ship_latency = \"emulated\" needs bench.emulate"):
        load_target(path)


def test_report_shows_the_arm_estimate_beside_the_host_percentiles(make_build, fx, tmp_path):
    from edge_kd.report import write_report

    plain = make_build("plain")
    emulated = make_build("emulated")
    _record_estimate(fx, emulated, 4.25)
    assert "ARM est" not in write_report([plain], tmp_path / "a")["markdown"].read_text()
    md = write_report([plain, emulated], tmp_path / "b")["markdown"].read_text()
    lines = md.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| build"))
    assert lines[start].split(" | ")[-2] == "ARM est. ms"
    table = lines[start + 2:lines.index("", start)]   # the Builds table only
    rows = {line.split(" | ")[0].lstrip("| "): line for line in table}
    assert " | 4.25 | " in rows["emulated"] and " | - | " in rows["plain"]
    assert "ARM est. ms" in write_report([emulated], tmp_path / "c")["html"].read_text()
