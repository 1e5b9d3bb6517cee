"""Pipeline core: atomic writes, the build manifest, stage contracts and resume by cache key."""
from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from edge_kd.errors import ConfigError, EdgeKDError, InputError
from edge_kd.pipeline import (SCHEMA_VERSION, Artifact, Build, Stage, atomic_dir, atomic_path, atomic_write_json,
                              content_hash, file_facts, read_manifest, run_pipeline, validate_pipeline)


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    final = tmp_path / "model.onnx"
    final.write_bytes(b"old model")
    with pytest.raises(RuntimeError):
        with atomic_path(final) as tmp:
            tmp.write_bytes(b"half a mod")
            raise RuntimeError("exporter crashed")
    assert final.read_bytes() == b"old model"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]


def test_atomic_path_replaces_on_success_and_keeps_suffix(tmp_path):
    final = tmp_path / "sub" / "model.tflite"
    with atomic_path(final) as tmp:
        assert tmp.suffix == ".tflite" and tmp.parent == final.parent
        tmp.write_bytes(b"new")
    assert final.read_bytes() == b"new"
    assert [p.name for p in final.parent.iterdir()] == ["model.tflite"]


def test_atomic_path_refuses_empty_output(tmp_path):
    with pytest.raises(OSError):
        with atomic_path(tmp_path / "x.bin"):
            pass
    assert not (tmp_path / "x.bin").exists()


def test_atomic_dir_swaps_whole_folder(tmp_path):
    target = tmp_path / "cache"
    with atomic_dir(target) as tmp:
        (tmp / "a").write_text("1")
    with pytest.raises(ValueError):
        with atomic_dir(target) as tmp:
            (tmp / "b").write_text("2")
            raise ValueError
    assert [p.name for p in target.iterdir()] == ["a"]
    assert [p.name for p in tmp_path.iterdir()] == ["cache"]


def test_file_facts(tmp_path):
    path = tmp_path / "f.bin"
    data = b"edge" * 1000
    path.write_bytes(data)
    facts = file_facts(path)
    assert facts["bytes"] == 4000
    assert facts["sha256"] == hashlib.sha256(data).hexdigest()
    assert facts["gzip_bytes"] == len(gzip.compress(data, compresslevel=9, mtime=0)) < 4000


def test_build_manifest_records_stages_and_artifacts(tmp_path):
    build = Build.create(tmp_path / "b", target={"name": "t"}, recipe={"r": 1})
    with build.stage("export", cache_key="k1") as record:
        model = build.root / "model.pte"
        model.write_bytes(b"\x00" * 100)
        entry = build.add_artifact(model, role="model", format="pte")
        record["details"]["note"] = "hello"
    assert entry["path"] == "model.pte" and entry["bytes"] == 100
    manifest = read_manifest(build.root)
    assert manifest["schema_version"] == SCHEMA_VERSION
    for key in ("target", "recipe", "tool_versions", "stages", "artifacts", "metrics", "teacher", "gate"):
        assert key in manifest
    assert manifest["tool_versions"]["torch"]
    (stage,) = manifest["stages"]
    assert stage["name"] == "export" and stage["status"] == "ok" and stage["seconds"] >= 0
    assert stage["details"] == {"note": "hello"}


def test_failed_stage_is_recorded(tmp_path):
    build = Build.create(tmp_path / "b")
    with pytest.raises(ValueError):
        with build.stage("distill"):
            raise ValueError("boom")
    stage = read_manifest(build.root)["stages"][0]
    assert stage["status"] == "failed" and "boom" in stage["error"]


def test_interrupted_stage_is_recorded(tmp_path):
    build = Build.create(tmp_path / "b")
    with pytest.raises(KeyboardInterrupt):
        with build.stage("distill"):
            raise KeyboardInterrupt
    assert read_manifest(build.root)["stages"][0]["status"] == "interrupted"


def test_refuses_someone_elses_folder(tmp_path):
    (tmp_path / "thesis.docx").write_text("precious")
    with pytest.raises(InputError, match="refusing"):
        Build.create(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["thesis.docx"]


def test_read_manifest_errors(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        read_manifest(tmp_path / "nope")
    bad = tmp_path / "build.json"
    bad.write_text("{not json")
    with pytest.raises(InputError, match="corrupt JSON"):
        read_manifest(bad)
    bad.write_text(json.dumps({"schema_version": SCHEMA_VERSION + 1}))
    with pytest.raises(InputError, match="schema_version"):
        read_manifest(bad)
    bad.write_text(json.dumps({"hello": 1}))
    with pytest.raises(InputError, match="not an edge_kd build manifest"):
        read_manifest(bad)


class _Write(Stage):
    name = "write"
    provides = ("blob",)

    def __init__(self):
        self.runs = 0

    def cache_key(self, ctx):
        return content_hash(ctx["text"])

    def run(self, ctx, build, record):
        self.runs += 1
        path = build.root / "blob.txt"
        atomic_write_json(path, {"text": ctx["text"]})
        build.add_artifact(path, role="model", format="json")
        return {"blob": Artifact(path, "json")}

    def load_cached(self, ctx, build, record):
        path = build.root / "blob.txt"
        return {"blob": Artifact(path, "json")} if path.exists() else None


class _Upper(Stage):
    name = "upper"
    requires = ("blob",)
    provides = ("upper",)

    def run(self, ctx, build, record):
        return {"upper": json.loads(ctx["blob"].path.read_text())["text"].upper()}


def test_run_pipeline_and_reuse_by_cache_key(tmp_path):
    write, upper = _Write(), _Upper()
    build = Build.create(tmp_path / "b")
    out = run_pipeline([write, upper], build, {"text": "hi"})
    assert out["upper"] == "HI" and write.runs == 1
    # Same inputs: the completed stage is reused, not re-run.
    build = Build.open(tmp_path / "b")
    out = run_pipeline([write, upper], build, {"text": "hi"})
    assert write.runs == 1 and out["upper"] == "HI"
    assert [s["status"] for s in read_manifest(build.root)["stages"]] == ["reused", "ok"]
    # Changed inputs: re-run.
    out = run_pipeline([write, upper], build, {"text": "yo"})
    assert write.runs == 2 and out["upper"] == "YO"


def test_validate_pipeline_catches_ordering():
    with pytest.raises(ConfigError, match="needs blob"):
        validate_pipeline([_Upper(), _Write()], initial=["text"])
    with pytest.raises(ConfigError, match="twice"):
        validate_pipeline([_Write(), _Write()], initial=["text"])
    validate_pipeline([_Write(), _Upper()], initial=["text"])


def test_stage_must_deliver_what_it_promised(tmp_path):
    class Liar(Stage):
        name = "liar"
        provides = ("model",)

        def run(self, ctx, build, record) -> dict[str, Any]:
            return {"model": Artifact(build.root / "missing.pte", "pte")}

    with pytest.raises(EdgeKDError, match="missing or empty"):
        run_pipeline([Liar()], Build.create(tmp_path / "b"), {})
