import pytest

from edge_kd.units import AccuracyDrop, format_bytes, parse_accuracy_drop, parse_bytes, parse_ms


@pytest.mark.parametrize("text,expected", [
    ("1.5MiB", 1572864), ("800KB", 800_000), ("1024 B", 1024), ("2GiB", 2 * 1024**3), ("256KiB", 262144), (4096, 4096),
])
def test_parse_bytes(text, expected):
    assert parse_bytes(text) == expected


@pytest.mark.parametrize("bad", ["-1MiB", "1.5 parsecs", "MiB", "", True, -5, 1.5])
def test_parse_bytes_rejects(bad):
    with pytest.raises(ValueError):
        parse_bytes(bad)


@pytest.mark.parametrize("text,expected", [("12ms", 12.0), ("0.5s", 500.0), ("800us", 0.8), ("3.25 ms", 3.25)])
def test_parse_ms(text, expected):
    assert parse_ms(text) == pytest.approx(expected)


@pytest.mark.parametrize("bad", ["12", 12, "-3ms", "3 hours", None])
def test_parse_ms_rejects(bad):
    with pytest.raises(ValueError):
        parse_ms(bad)


def test_accuracy_drop_absolute_and_relative():
    absolute = parse_accuracy_drop("1.5pt")
    assert absolute == AccuracyDrop("absolute", pytest.approx(0.015))
    assert absolute.min_allowed(0.90) == pytest.approx(0.885)
    relative = parse_accuracy_drop("2%")
    assert relative.min_allowed(0.90) == pytest.approx(0.882)
    assert str(absolute) == "1.5pt" and str(relative) == "2%"
    with pytest.raises(ValueError):
        parse_accuracy_drop("-1pt")
    with pytest.raises(ValueError):
        parse_accuracy_drop(0.01)


def test_format_bytes():
    assert format_bytes(512) == "512 B"
    assert format_bytes(1536) == "1.50 KiB"
    assert format_bytes(3 * 1024**2) == "3.00 MiB"
