"""The three report formats and the console table."""
from __future__ import annotations

import json
import xml.etree.ElementTree as ET

from edge_kd.gate import evaluate, reports_to_console, reports_to_json, reports_to_junit, reports_to_markdown
from edge_kd.gate.formats import MARKDOWN_MARKER
from edge_kd.gate.result import format_value


def _two_reports(make_build, fx, tmp_path):
    good = evaluate(make_build("good"))
    bad = evaluate(make_build("bad", width=24, latency=(10.0, 12.5, 14.0)),
                   baseline=fx.baseline_of(make_build("base"), tmp_path / "release"))
    return good, bad


def test_json_document(make_build, fx, tmp_path):
    good, bad = _two_reports(make_build, fx, tmp_path)
    doc = json.loads(reports_to_json([good, bad]))
    assert doc["schema_version"] == 1 and doc["passed"] is False
    assert [b["passed"] for b in doc["builds"]] == [True, False]
    check = next(c for c in doc["builds"][1]["checks"] if c["name"] == "bundle.size")
    assert set(check) >= {"name", "passed", "value", "limit", "reason", "unit", "comparator"}
    assert check["unit"] == "bytes" and isinstance(check["value"], int) and check["limit"] == 65536
    # Where the bytes go is always in the JSON, pass or fail.
    assert doc["builds"][0]["breakdown"]["items"][0]["kind"] == "tensor"
    assert doc["builds"][1]["baseline"].endswith("build.json")
    assert json.loads(good.to_json())["builds"][0]["build"] == good.build


def test_json_never_emits_nan():
    from edge_kd.gate import GateReport
    from edge_kd.gate.result import Check

    report = GateReport(passed=False, checks=[Check("latency.p90", "Latency p90", False, float("nan"), 12.0,
                                                    "not finite", "ms")], build="b", target="t")
    text = reports_to_json([report])
    assert "NaN" not in text
    assert json.loads(text)["builds"][0]["checks"][0]["value"] == "nan"


def test_junit_counts_and_failures(make_build, fx, tmp_path):
    good, bad = _two_reports(make_build, fx, tmp_path)
    root = ET.fromstring(reports_to_junit([good, bad]))
    assert root.tag == "testsuites"
    suites = root.findall("testsuite")
    assert len(suites) == 2
    assert int(root.get("tests")) == len(good.checks) + len(bad.checks) == 19
    assert int(root.get("failures")) == len(bad.failed)
    for suite, report in zip(suites, (good, bad)):
        cases = suite.findall("testcase")
        assert int(suite.get("tests")) == len(cases) == len(report.checks)
        assert int(suite.get("failures")) == len(report.failed) == len(suite.findall("testcase/failure"))
        assert [c.get("name") for c in cases] == [c.name for c in report.checks]
    failure = suites[1].find("testcase[@name='latency.p90']/failure")
    assert failure is not None and "0.50 ms over" in failure.get("message")
    assert "12.50 ms" in failure.text and "12.00 ms" in failure.text
    assert suites[0].find("testcase/failure") is None


def test_junit_escapes_hostile_text(make_build, fx):
    build = make_build(target="tflite-int8", violations=['<script>&"x"</script>'])
    xml = evaluate(build).to_junit()
    root = ET.fromstring(xml)  # would raise on broken escaping
    assert '<script>&"x"</script>' in root.find(".//failure").get("message")


def test_markdown_table_and_breakdown_when_over_budget(make_build, fx, tmp_path):
    good, bad = _two_reports(make_build, fx, tmp_path)
    md = reports_to_markdown([good, bad])
    assert md.startswith(MARKDOWN_MARKER)
    assert "❌ edge-kd release gate: 1 of 2 builds failed" in md
    assert "| ❌ | Bundle size |" in md and "≤ 64.00 KiB" in md
    assert "| ✅ | Latency p90 | 9.50 ms | ≤ 12.00 ms |" in md
    # Over a size budget: the breakdown is expanded right below the failing table.
    bad_section = md.split("`" + bad.build + "`", 1)[1]
    assert "**Where the bytes go**" in bad_section.split("<details>")[0]
    assert "`features.5.conv.weight` <sub>int8 96×96×3×3</sub>" in bad_section
    # Passing builds keep it folded.
    good_section = md.split("`" + bad.build + "`", 1)[0]
    assert "<details><summary>Where the bytes go</summary>" in good_section


def test_markdown_single_build(good_build):
    md = evaluate(good_build).to_markdown()
    assert f"### ✅ `{good_build}` → android-arm64-xnnpack: passed" in md
    assert md.count("| ✅ |") == 8


def test_console_table(make_build, fx, tmp_path):
    good, bad = _two_reports(make_build, fx, tmp_path)
    text = reports_to_console([good, bad])
    assert "FAIL    bundle.size" in text and "where the bytes go:" in text
    assert text.rstrip().splitlines()[-1] == (
        f"gate FAILED (1 of 2 build(s)): {bad.build}: bundle.size, bundle.download_size, latency.p90, "
        "baseline.size_growth, baseline.latency_growth")
    assert reports_to_console([good]).rstrip().endswith("gate PASSED (1 build(s), 8 checks)")


def test_format_value_units():
    assert format_value(1536, "bytes") == "1.50 KiB"
    assert format_value(12.0, "ms") == "12.00 ms"
    assert format_value(0.05, "fraction") == "+5.0%"
    assert format_value(0.005, "points") == "0.50 pt"
    assert format_value(0.9123, "accuracy") == "0.9123 accuracy"
    assert format_value(2, "violations") == "2 violations"
    assert format_value(None, "ms") == "missing"


def test_hash_named_tensors_are_shortened_for_people_not_for_scripts(good_build, fx):
    from edge_kd.gate.bundle import short_name

    digest = "7d698131b0758e89bbfa7028889cdc8d7c49df9b5a55555fcbf1e8a799f75400"
    assert short_name(digest) == "7d698131b075…"
    assert short_name("encoder.layer.0.attention.self.query.weight", limit=20) == "…n.self.query.weight"
    assert short_name("fc.weight") == "fc.weight"

    def rename(m):
        m["artifacts"][0]["tensors"][0]["name"] = digest  # the largest tensor, as ExecuTorch names it
    fx.edit_manifest(good_build, rename)
    report = evaluate(good_build)
    assert "`7d698131b075…`" in report.to_markdown() and digest not in report.to_markdown()
    assert any(i["name"] == digest for i in json.loads(report.to_json())["builds"][0]["breakdown"]["items"])
