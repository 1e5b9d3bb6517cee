"""benchmarks/distill.py: the per-budget options (epochs, dims, transfer copies, ...) parse or fail in one line."""
import pytest

from edge_kd.errors import InputError


def test_per_budget_values_and_their_default(benchmark_script):
    distill = benchmark_script("distill")
    copies = distill.per_budget("1MiB=2,256KiB=4, 64KiB=4", 2)
    assert [copies(b) for b in ("1MiB", "256KiB", "64KiB", "512KiB")] == [2, 4, 4, 2]  # unnamed: the default
    assert distill.per_budget("3", 2)("1MiB") == 3  # a bare number applies to every budget


@pytest.mark.parametrize("text", ["abc", "64KiB=x", "1MiB=2=3", "1MiB"])
def test_bad_per_budget_text_is_an_input_error_naming_the_option(benchmark_script, text):
    distill = benchmark_script("distill")
    with pytest.raises(InputError, match=f"--aug-copies '{text}': one whole number, or BUDGET=VALUE"):
        distill.per_budget(text, 2, "--aug-copies")


def test_init_per_budget_names_the_rows_and_rejects_other_words(benchmark_script):
    distill = benchmark_script("distill")
    init = distill.per_budget("1MiB=random,256KiB=teacher", "teacher", "--init", distill.init_choice)
    assert [init(b) for b in ("1MiB", "256KiB", "64KiB")] == ["random", "teacher", "teacher"]
    assert distill.per_budget("auto", "teacher", "--init", distill.init_choice)("64KiB") == "auto"
    with pytest.raises(InputError, match=r"--init '1MiB=pca': one of teacher\|random\|auto, or BUDGET=VALUE"):
        distill.per_budget("1MiB=pca", "teacher", "--init", distill.init_choice)


@pytest.mark.parametrize("argv, message", [
    (["--families", "text_hashed,nope"], "--families 'text_hashed,nope': unknown nope; known: text_hashed"),
    (["--families", ","], "--families ',': none given"),
    (["--init", "256KiB=pca"], "--init '256KiB=pca': one of teacher|random|auto"),
    (["--hashes", "256KiB=0"], "--hashes '256KiB=0': ids per n-gram must be 1..8"),
    (["--hashes", "two"], "--hashes 'two': one whole number"),
])
def test_bad_options_exit_2_before_any_results_file_is_written(benchmark_script, monkeypatch, tmp_path, capsys,
                                                              argv, message):
    distill = benchmark_script("distill")
    stem = tmp_path / "results"
    monkeypatch.setattr("sys.argv", ["distill.py", "--results-stem", str(stem), *argv])
    assert distill.main() == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {message}") and err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []  # nothing written (a bad --families used to blank distill.md)
