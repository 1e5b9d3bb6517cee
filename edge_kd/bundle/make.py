"""Write a build's bundle files: the per-artifact preprocessing asset and the golden vectors."""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from edge_kd.bundle import (ASSET_FILE, BUNDLE_DIR, IMAGE_VECTOR_COUNT, MANIFEST_KEY, STUDENT_PREPROCESSING_ROLE,
                            VECTOR_COUNT, VECTORS_DIR, VECTORS_FILE, VECTORS_ROLE)
from edge_kd.bundle.assets import (ARRAYS_FORMAT, arrays_asset, forecast_asset, image_asset, items_asset, raw_to_inputs,
                                   tabular_asset, text_asset, to_contract)
from edge_kd.bundle.vectors import VECTORS_FORMAT, VECTORS_VERSION, make_vectors
from edge_kd.pipeline.files import sha256_file

AssetMaker = Callable[[Mapping[str, Any]], dict[str, Any]]


def _rel(path: Path, root: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(root.resolve()))
    except ValueError:
        return str(Path(path).resolve())


def raw_samples(ds: Any, indices: Sequence[int]) -> list[dict[str, Any]]:
    """Per row of ``ds``: ``{"row", "label", "raw"}`` with the input as an app receives it (the text,
    the CSV row with missing values as null, or the image: its decoded resized pixels and source file)."""
    from edge_kd.data.tabular import MISSING_CATEGORY, TabularDataset

    out = []
    for i in (int(i) for i in indices):
        if getattr(ds, "task", None) == "ranking":  # next-purchase: the next basket's product codes
            out.append({"row": i, "label": [ds.label_names[int(k)] for k in ds.labels[i] if k >= 0],
                        "raw": {"history": ds.raw_history(i)}})
            continue
        if getattr(ds, "task", None) == "regression":
            label: Any = float(ds.labels[i])  # the true quantity
        else:
            label = ds.label_names[int(ds.labels[i])] if len(ds.label_names) > int(ds.labels[i]) else int(ds.labels[i])
        if hasattr(ds, "texts"):
            raw: dict[str, Any] = {"text": ds.texts[i]}
        elif isinstance(ds, TabularDataset):
            row: dict[str, Any] = {}
            for j, name in enumerate(ds.numeric_names):
                v = float(ds.raw_numeric[i, j])
                row[name] = None if math.isnan(v) else v
            for j, name in enumerate(ds.categorical_names):
                v = ds.raw_categorical[i, j]
                row[name] = None if v == MISSING_CATEGORY else str(v)
            raw = {"row": row}
        elif hasattr(ds, "raw_x") and getattr(ds, "preprocessor", None) is not None:  # demand forecasting
            raw = {"features": {n: float(v) for n, v in zip(ds.preprocessor.features, ds.raw_x[i])},
                   "level": float(ds.level[i])}
        elif hasattr(ds, "pixels") and hasattr(ds, "paths"):
            source = Path(ds.paths[i])
            raw = {"pixels": ds.pixels([i])[0], "source": source.name if not source.is_absolute() else str(source),
                   "source_sha256": sha256_file(source) if source.is_file() else None}
            # load_image_list names its data set "ROOT:split": give the file relative to that root.
            root = Path(str(getattr(ds, "source", "") or "").rpartition(":")[0] or ".")
            if root.is_dir() and source.resolve().is_relative_to(root.resolve()):
                raw["source"] = _rel(source, root)
        else:
            raw = {}
        out.append({"row": i, "label": label, "raw": raw})
    return out


def asset_maker(ds: Any, *, text_spec: Any = None, preprocessing: str | None = None) -> AssetMaker:
    """How this data's asset is written once the artifact's contract is known."""
    from edge_kd.data.tabular import TabularDataset

    labels = list(ds.label_names)
    if text_spec is not None:
        return lambda contract: text_asset(text_spec, contract)
    if getattr(ds, "task", None) == "ranking" and hasattr(ds, "untrained"):
        return lambda contract: items_asset(labels, ds.untrained, ds.history_length, contract)
    if isinstance(ds, TabularDataset):
        prep = ds.preprocessor
        return lambda contract: tabular_asset(prep, ds.input_names, labels, contract)
    if hasattr(ds, "raw_x") and getattr(ds, "preprocessor", None) is not None:
        return lambda contract: forecast_asset(ds.preprocessor, labels, contract)
    if hasattr(ds, "pixels") and hasattr(ds, "size"):
        scaling = preprocessing or ds.preprocessing
        return lambda contract: image_asset(ds.size, scaling, labels, contract)
    return lambda contract: arrays_asset(labels, contract)


def vector_count(ds: Any) -> int:
    return IMAGE_VECTOR_COUNT if hasattr(ds, "pixels") and hasattr(ds, "size") else VECTOR_COUNT


def demote_student_assets(build: Any, keep: str) -> None:
    """The distill stage's preprocessing files describe the PyTorch student (e.g. int64 ids): once the
    artifact's own asset exists they stay in the build folder but no longer ship."""
    changed = False
    for entry in build.manifest.get("artifacts", []):
        if entry.get("role") == "preprocessing" and entry.get("path") != keep:
            entry["role"] = STUDENT_PREPROCESSING_ROLE
            changed = True
    if changed:
        build.save()


def write_bundle(build: Any, artifact: str | os.PathLike[str], make_asset: AssetMaker,
                 samples: Sequence[dict[str, Any]], data_inputs: Sequence[Sequence[np.ndarray]]) -> dict[str, Any]:
    """Read ``artifact``'s contract, write ``bundle/preprocess.json`` and ``vectors/``, record them in
    ``build`` (an :class:`edge_kd.pipeline.Build`) and return the manifest's ``bundle`` record.

    ``samples``: :func:`raw_samples` of the test rows; ``data_inputs``: the model inputs the build's
    data pipeline made for the same rows (batch 1). The vectors' inputs are recomputed from the raw
    input through the written asset, as an app would, and must equal ``data_inputs``: an asset that
    does not describe the preprocessing the model was measured with fails the build here.

    >>> record = write_bundle(build, "out/artifact/model.tflite", asset_maker(test_ds, text_spec=spec),
    ...                       raw_samples(test_ds, idx), inputs)          # doctest: +SKIP
    """
    from edge_kd.pipeline.atomic import atomic_write_text
    from edge_kd.runtimes import open_runner

    root = Path(build.root)
    artifact = Path(artifact)
    runner = open_runner(artifact)
    contract = {"format": artifact.suffix.lstrip(".").lower(), "runtime": runner.runtime, **runner.io_contract()}
    asset = make_asset(contract)
    asset_path = root / BUNDLE_DIR / ASSET_FILE
    # Compact: these bytes ship in the app and count against the size budget.
    atomic_write_text(asset_path, json.dumps(asset, separators=(",", ":"), ensure_ascii=False))

    vec_dir = root / VECTORS_DIR
    images = vec_dir / "images"
    samples = [dict(s, raw=dict(s["raw"])) for s in samples]
    for i, s in enumerate(samples):
        pixels = s["raw"].pop("pixels", None)
        if pixels is not None:
            from PIL import Image

            images.mkdir(parents=True, exist_ok=True)
            png = images / f"{i:03d}.png"
            Image.fromarray(np.asarray(pixels, dtype=np.uint8), "RGB").save(png, optimize=True)
            s["raw"] = {"pixels": _rel(png, root), "pixels_sha256": sha256_file(png), **s["raw"]}
    image = any("pixels" in s["raw"] for s in samples)
    inputs = []
    for s, data in zip(samples, data_inputs):
        expected = [to_contract(a, e, "data input") for a, e in zip(data, contract["inputs"])]
        if asset["format"] == ARRAYS_FORMAT or not s["raw"]:
            s.pop("raw", None)
            inputs.append(expected)
            continue
        derived = raw_to_inputs(asset, s["raw"], root)
        for k, (a, b) in enumerate(zip(derived, expected)):
            if a.shape != b.shape or not np.array_equal(a, b):
                raise RuntimeError(f"bundle: the written {asset['format']} asset does not reproduce the model input "
                                   f"{k} of test row {s['row']} (the asset and the data pipeline disagree)")
        inputs.append(derived)
    body = make_vectors(runner, contract, samples, inputs, image_inputs=image)
    artifact_sha = sha256_file(artifact)
    doc = {"format": VECTORS_FORMAT, "version": VECTORS_VERSION,
           "artifact": {"path": _rel(artifact, root), "sha256": artifact_sha, "runtime": runner.runtime,
                        "runtime_version": runner.runtime_version},
           "preprocessing": _rel(asset_path, root), "contract": contract, **body}
    vectors_path = vec_dir / VECTORS_FILE
    atomic_write_text(vectors_path, json.dumps(doc, indent=1, ensure_ascii=False))

    demote_student_assets(build, _rel(asset_path, root))
    build.add_artifact(asset_path, role="preprocessing", format="json")
    build.add_artifact(vectors_path, role=VECTORS_ROLE, format="json")
    record = {"version": 1, "artifact": {"path": _rel(artifact, root), "sha256": artifact_sha},
              "contract": contract, "preprocessing": {"path": _rel(asset_path, root), "format": asset["format"]},
              "vectors": {"path": _rel(vectors_path, root), "count": len(doc["vectors"]),
                          "sha256": sha256_file(vectors_path)},
              "tolerance": body["tolerance"]}
    build.manifest[MANIFEST_KEY] = record
    build.save()
    return record
