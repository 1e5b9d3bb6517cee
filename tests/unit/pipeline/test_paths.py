"""The output-path guard: names that climb out of --out, outputs that would overwrite inputs or a
build's recorded files, and re-exports that replace (not accumulate) a build's model artifacts."""
from __future__ import annotations

from pathlib import Path

import pytest

from edge_kd.errors import InputError
from edge_kd.pipeline import Build
from edge_kd.pipeline.paths import (check_output_dir, check_output_file, check_owned, inside, recorded_files,
                                    remove_replaced, safe_name)


@pytest.mark.parametrize("name", ["../escape", "/abs/path", "a/b", "a\\b", "..", ".", "", "x" * 300, "tab\tname"])
def test_safe_name_refuses_names_that_leave_the_folder(name):
    with pytest.raises(InputError):
        safe_name(name, what="target name", source="p.toml")


def test_safe_name_accepts_plain_names():
    assert safe_name("ort-mobile_v2.1", what="target name") == "ort-mobile_v2.1"


@pytest.fixture
def build_dir(tmp_path):
    root = tmp_path / "b"
    b = Build.create(root)
    (root / "model.ort").write_bytes(b"model")
    b.add_artifact(root / "model.ort", role="model", format="ort")
    return root


def test_output_file_refuses_inputs_recorded_files_dirs_and_dangling_links(tmp_path, build_dir):
    profile = tmp_path / "p.toml"
    profile.write_text("x")
    with pytest.raises(InputError, match="input of this command"):
        check_output_file(profile, option="--json", inputs=[profile])
    with pytest.raises(InputError, match="file of the build"):
        check_output_file(build_dir / "model.ort", option="--junit")
    with pytest.raises(InputError, match="file of the build"):
        check_output_file(build_dir / "build.json", option="--json")
    with pytest.raises(InputError, match="directory"):
        check_output_file(tmp_path, option="--json")
    link = tmp_path / "dangling.json"
    link.symlink_to(tmp_path / "missing" / "x.json")
    with pytest.raises(InputError, match="symlink"):
        check_output_file(link, option="--json")
    with pytest.raises(InputError, match="longer than"):
        check_output_file(tmp_path / ("n" * 300 + ".json"), option="--json")
    # a link that resolves to an input is that input
    alias = tmp_path / "alias.toml"
    alias.symlink_to(profile)
    with pytest.raises(InputError):
        check_output_file(alias, option="--json", inputs=[profile])
    # new files beside the build are fine, and so is stdout
    assert check_output_file(build_dir / "gate.json", option="--json") == build_dir / "gate.json"
    assert check_output_file("-", option="--json") == Path("-")


def test_output_dir_refuses_files_and_dangling_links(tmp_path):
    f = tmp_path / "f"
    f.write_text("x")
    with pytest.raises(InputError, match="not a directory"):
        check_output_dir(f)
    link = tmp_path / "out"
    link.symlink_to(tmp_path / "gone")
    with pytest.raises(InputError, match="symlink"):
        check_output_dir(link)


def test_check_owned_refuses_files_the_build_did_not_record(build_dir):
    (build_dir / "notes.onnx").write_text("mine")
    check_owned(build_dir, ["model.ort", "new.onnx"])  # recorded or new: ours to write
    with pytest.raises(InputError, match="does not own"):
        check_owned(build_dir, ["notes.onnx"])
    with pytest.raises(InputError, match="input"):
        check_owned(build_dir, ["model.ort"], inputs=[build_dir / "model.ort"])


def test_inside_rejects_escapes(tmp_path, build_dir):
    assert inside(build_dir, "model.ort")
    assert not inside(build_dir, "../other/model.ort")
    assert not inside(build_dir, "/etc/passwd")
    (build_dir / "link").symlink_to(tmp_path)
    assert not inside(build_dir, "link/x")


def test_add_artifact_refuses_files_outside_the_build(tmp_path, build_dir):
    outside = tmp_path / "elsewhere.bin"
    outside.write_bytes(b"x")
    with pytest.raises(InputError, match="inside the build folder"):
        Build.open(build_dir).add_artifact(outside, role="model", format="bin")


def test_drop_and_remove_replaced_forget_old_model_files(build_dir):
    b = Build.open(build_dir)
    (build_dir / "v2.ort").write_bytes(b"new model")
    dropped = b.drop_artifacts(roles=("model",))
    remove_replaced(build_dir, dropped, keep=[build_dir / "v2.ort"])
    b.add_artifact(build_dir / "v2.ort", role="model", format="ort")
    assert not (build_dir / "model.ort").exists()
    assert [a["path"] for a in b.manifest["artifacts"]] == ["v2.ort"]
    assert recorded_files(build_dir) == {(build_dir / "build.json").resolve(), (build_dir / "v2.ort").resolve()}


def test_remove_replaced_keeps_a_file_edited_since(build_dir):
    b = Build.open(build_dir)
    dropped = b.drop_artifacts(roles=("model",))
    (build_dir / "model.ort").write_bytes(b"edited by hand")
    remove_replaced(build_dir, dropped, keep=[])
    assert (build_dir / "model.ort").read_bytes() == b"edited by hand"
