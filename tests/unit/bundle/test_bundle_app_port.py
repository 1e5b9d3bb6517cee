"""Play the app developer: a JavaScript port of the text preprocessing (examples/ports/js), written from
the documented algorithm, encodes the golden vectors' texts; the ids go to each runtime's own Python
API (onnxruntime, ai_edge_litert, executorch.runtime: no edge_kd code between ids and logits) in the
dtype the bundle's contract declares. Ids and top-1 must match the vectors."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[3]
PORT = REPO / "examples" / "ports" / "js"
NODE = shutil.which("node")
pytestmark = pytest.mark.skipif(NODE is None, reason="node is not installed")

ENCODE = """
import { HashedNgrams } from %s;
import { Wordpiece } from %s;
let input = "";
process.stdin.setEncoding("utf8");
for await (const chunk of process.stdin) input += chunk;
const { spec, texts } = JSON.parse(input);
const port = spec.format === "edge_kd.text.wordpiece" ? new Wordpiece(spec) : new HashedNgrams(spec);
console.log(JSON.stringify(texts.map((t) => port.encode(t))));
"""


def _node_encode(spec: dict, texts: list[str]) -> list[list[int]]:
    code = ENCODE % (json.dumps((PORT / "hashed_ngrams.mjs").as_uri()), json.dumps((PORT / "wordpiece.mjs").as_uri()))
    out = subprocess.run([NODE, "--input-type=module", "-e", code], input=json.dumps({"spec": spec, "texts": texts}),
                         capture_output=True, text=True, timeout=120, check=True)
    return json.loads(out.stdout)


def _plain_runtime_logits(path: Path, ids: np.ndarray) -> np.ndarray:
    """The artifact run through its runtime's public Python API, as a reference app would."""
    if path.suffix in (".ort", ".onnx"):
        import onnxruntime as ort

        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return session.run(None, {session.get_inputs()[0].name: ids})[0]
    if path.suffix == ".tflite":
        from ai_edge_litert.interpreter import Interpreter

        interp = Interpreter(model_path=str(path))
        interp.allocate_tensors()
        interp.set_tensor(interp.get_input_details()[0]["index"], ids)
        interp.invoke()
        out = interp.get_output_details()[0]
        y = interp.get_tensor(out["index"]).astype(np.float32)
        scale, zero_point = out["quantization"]
        return (y - zero_point) * scale if scale else y
    import torch
    from executorch.runtime import Runtime

    method = Runtime.get().load_program(path).load_method("forward")
    return method.execute([torch.from_numpy(ids)])[0].numpy()


@pytest.mark.parametrize("target", ["android-arm64-xnnpack", "ort-mobile", "tflite-int8"])
@pytest.mark.parametrize("kind", ["text", "text_two_hashes", "wordpiece"])
def test_js_port_ids_through_plain_runtimes(bundle_factory, kind, target):
    root = bundle_factory(kind, target)
    result = subprocess.run([NODE, str(PORT / "check_vectors.mjs"), str(root)], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    port = json.loads(result.stdout)
    vectors = json.loads((root / "vectors" / "vectors.json").read_text())
    spec = json.loads((root / vectors["preprocessing"]).read_text())
    assert port["checked"] == len(vectors["vectors"]) >= 6 and port["mismatches"] == []
    dtype = np.dtype(spec["input"]["dtype"])  # int32 for the .tflite, int64 for .pte/.ort
    artifact = root / vectors["artifact"]["path"]
    atol = vectors["tolerance"]["atol"]
    for vec in vectors["vectors"]:
        ids = np.asarray([port["ids"][str(vec["id"])]], dtype=dtype).reshape(spec["input"]["shape"])
        logits = _plain_runtime_logits(artifact, ids).reshape(-1)
        assert int(np.argmax(logits)) == vec["top1"], vec["raw"]["text"]
        np.testing.assert_allclose(logits, vec["outputs"][0], atol=atol, rtol=0)


EDGE_TEXTS = [
    "Où est ma commande? Ünïcödé façade", "İSTANBUL'a KARGO ıı", "ΟΔΟΣ ΣΟΦΟΣ σίγμα", "ＦＵＬＬ　ｗｉｄｔｈ１２３",
    "refund 🙂👍🏽 now!!", "ﬁnance ﬂow straße", "tab\there\x1cunit\x85nel\u00a0nbsp\ufeffbom", "", "a",
    "don't   stop—ever…", "日本語のテキスト", "x\u0301y\u0308",
]


@pytest.mark.parametrize("kind", ["text", "text_two_hashes", "wordpiece"])
def test_js_port_matches_the_reference_on_every_bundled_sentence(kind):
    from edge_kd.data.text import load_text_csv
    from edge_kd.preprocess.text import TextPreprocessSpec
    from edge_kd.preprocess.wordpiece import WordpiecePreprocessSpec, rank_wordpieces

    texts = load_text_csv(REPO / "examples" / "data" / "bitext-customer-support" / "customer_support.csv",
                          "instruction", "intent").texts
    texts = list(texts) + EDGE_TEXTS
    if kind == "text":
        spec = TextPreprocessSpec(buckets=55001, max_ids=64)
    elif kind == "text_two_hashes":
        spec = TextPreprocessSpec(buckets=55001, max_ids=128, hashes_per_feature=2)
    else:
        # The pieces of every word and character of the texts, then a short prefix: common words whole,
        # the rest split into pieces or unknown (non-ASCII characters that never start a word).
        words = sorted({w for t in texts for w in WordpiecePreprocessSpec(vocab=("[UNK]",)).words(t)})
        starts = sorted({w[0] for w in words} - set("ïüäé"))
        inner = sorted({c for w in words for c in w[1:]})
        teacher = ["[UNK]", *starts, *("##" + c for c in inner), *(w for w in words if len(w) > 1),
                   *("##" + w[2:] for w in words if len(w) > 3)]
        ranked = rank_wordpieces(texts, {p: i for i, p in enumerate(dict.fromkeys(teacher))})
        spec = WordpiecePreprocessSpec(vocab=tuple(ranked[:800]), max_ids=64, max_chars_per_word=12)
    got = _node_encode(spec.to_dict(), texts)
    want = [spec.encode(t) for t in texts]
    if kind == "wordpiece":  # the paths a port can get wrong are taken: unknown words and split words
        assert sum(row.count(1) for row in want) > 10
        assert sum(len(spec.pieces(w)) > 1 for t in texts for w in spec.words(t)) > 100
    mismatched = [t for t, a, b in zip(texts, got, want) if a != b]
    assert not mismatched, f"{len(mismatched)} of {len(texts)} differ, e.g. {mismatched[:3]}"
    assert len(texts) > 4500
