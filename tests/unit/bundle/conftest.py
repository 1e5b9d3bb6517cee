"""Real bundles of tiny models for the bundle, gate-contract and port tests.

``make_bundle(root, kind, target)`` exports a tiny model for ``target`` (fp32, or static int8 with
``int8=True``), records it in a real ``edge_kd.pipeline.Build`` and writes its bundle from the
small data the repository ships (tests/fixtures): support intents (text: hashed n-grams with one
or two ids per n-gram, or wordpieces), online-shopper sessions
(tabular), 24x24 product-colour patches (image). Other test folders load this file by path.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
TEXT_SPEC = {"buckets": 99, "max_ids": 16}


def _text(n: int, hashes_per_feature: int = 1):
    from edge_kd.data.text import load_text_csv
    from edge_kd.preprocess.text import TextPreprocessSpec
    from edge_kd.testing.tiny_models import tiny_text

    ds = load_text_csv(FIXTURES / "intents_small.csv", "instruction", "intent")
    spec = TextPreprocessSpec(**TEXT_SPEC, labels=tuple(ds.label_names), hashes_per_feature=hashes_per_feature)
    ids = spec.encode_batch(ds.texts)
    model = tiny_text(vocab_size=spec.vocab_size + 1, num_classes=ds.num_classes, seq_len=spec.max_ids)
    return ds, model, (ids,), {"text_spec": spec}


def _wordpiece(n: int):
    from edge_kd.data.text import load_text_csv
    from edge_kd.models.students.text import wordpiece_text_student
    from edge_kd.preprocess.wordpiece import WordpiecePreprocessSpec, rank_wordpieces

    ds = load_text_csv(FIXTURES / "intents_small.csv", "instruction", "intent")
    # A BERT-style vocabulary from the texts (whole words, every character as a first and a continuation
    # piece); the student keeps a prefix short enough that rarer words split into characters.
    words = sorted({w for t in ds.texts for w in WordpiecePreprocessSpec(vocab=("[UNK]",)).words(t)})
    chars = sorted({c for w in words for c in w})
    teacher = ["[PAD]", "[UNK]", *chars, *("##" + c for c in chars), *(w for w in words if len(w) > 1)]
    ranked = rank_wordpieces(ds.texts, {p: i for i, p in enumerate(dict.fromkeys(teacher))})
    spec = WordpiecePreprocessSpec(vocab=tuple(ranked[:120]), max_ids=16, labels=tuple(ds.label_names))
    model = wordpiece_text_student(vocab=len(spec.vocab), dim=8, num_classes=ds.num_classes, max_ids=16).eval()
    return ds, model, (spec.encode_batch(ds.texts),), {"text_spec": spec}


def _tabular(n: int):
    import torch

    from edge_kd.data.tabular import TabularSchema, load_tabular_csv
    from edge_kd.models.students.tabular import tabular_student

    ds = load_tabular_csv(FIXTURES / "shoppers_small.csv",
                          TabularSchema(label="Revenue", categorical=("Month", "VisitorType", "Weekend")))
    torch.manual_seed(0)
    model = tabular_student(ds.num_numeric, hidden=16, num_outputs=2, cardinalities=list(ds.cardinalities)).eval()
    return ds, model, ds.inputs(), {}


def _image(n: int):
    from edge_kd.data.images import load_image_list
    from edge_kd.testing.tiny_models import tiny_cnn

    ds = load_image_list(FIXTURES / "images", "test", size=32, preprocessing="imagenet")
    model = tiny_cnn(num_classes=ds.num_classes)
    return ds, model, ds.inputs(), {}


def _text_two_hashes(n: int):
    """Hashed n-grams with two ids per n-gram (a version 2 spec)."""
    return _text(n, hashes_per_feature=2)


KINDS = {"text": _text, "text_two_hashes": _text_two_hashes, "wordpiece": _wordpiece, "tabular": _tabular,
         "image": _image}


def make_bundle(root: Path, kind: str, target: str, *, int8: bool = False, count: int = 8) -> Path:
    """Export the tiny ``kind`` model for ``target`` into ``root`` and write its bundle; returns root."""
    import torch

    from edge_kd.bundle.make import asset_maker, raw_samples, write_bundle
    from edge_kd.export import export_model
    from edge_kd.pipeline import Build
    from edge_kd.targets import load_target

    ds, model, arrays, extra = KINDS[kind](count)
    profile = load_target(target)
    build = Build.create(root, target=profile.to_dict(), recipe={"name": f"tiny-{kind}"})
    example = tuple(torch.from_numpy(np.ascontiguousarray(a[:1])) for a in arrays)
    out = root / "artifact"
    if int8:
        from edge_kd.quantize import quantize_model

        calibration = [tuple(a[i:i + 1] for a in arrays) for i in range(min(16, len(ds)))]
        primary = quantize_model(model, example, profile, calibration, out, method="minmax",
                                 ship="int8").primary  # static int8 I/O, whatever would ship
    else:
        primary = export_model(model, example, profile, out, name="model").primary
    build.add_artifact(primary, role="model", format=primary.suffix.lstrip("."))
    idx = np.arange(min(count, len(ds)))
    inputs = [tuple(a[i:i + 1] for a in arrays) for i in idx]
    write_bundle(build, primary, asset_maker(ds, **extra), raw_samples(ds, idx), inputs)
    return root


@pytest.fixture(scope="session")
def bundle_factory(tmp_path_factory):
    """Bundles cached per (kind, target, int8) for the session; tests copy before tampering."""
    made: dict[tuple[str, str, bool], Path] = {}

    def get(kind: str, target: str, int8: bool = False) -> Path:
        key = (kind, target, int8)
        if key not in made:
            made[key] = make_bundle(tmp_path_factory.mktemp(f"{kind}-{target}"), kind, target, int8=int8)
        return made[key]

    return get
