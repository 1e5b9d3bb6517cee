// Encode a bundle's golden-vector texts with the JavaScript port (hashed n-grams or wordpieces) and compare the ids with the
// vectors' recorded model inputs. Prints one JSON object: {"checked", "mismatches", "ids": {id: [...]}}.
// Exit 0 all ids match, 1 a mismatch, 2 bad usage.
//   node examples/ports/js/check_vectors.mjs BUILD_DIR
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { HashedNgrams } from "./hashed_ngrams.mjs";
import { Wordpiece } from "./wordpiece.mjs";

const root = process.argv[2];
if (!root) {
  console.error("usage: node check_vectors.mjs BUILD_DIR");
  process.exit(2);
}
const vectors = JSON.parse(readFileSync(join(root, "vectors", "vectors.json"), "utf8"));
const spec = JSON.parse(readFileSync(join(root, vectors.preprocessing), "utf8"));
const port = spec.format === "edge_kd.text.wordpiece" ? new Wordpiece(spec) : new HashedNgrams(spec);
const result = { checked: 0, mismatches: [], dtype: spec.input.dtype, ids: {} };
for (const v of vectors.vectors) {
  const ids = Array.from(port.tensor(v.raw.text), Number);
  const expected = v.inputs[0];
  result.checked++;
  result.ids[v.id] = ids;
  const at = ids.findIndex((x, i) => x !== expected[i]);
  if (at >= 0 || ids.length !== expected.length) {
    result.mismatches.push({ id: v.id, position: at, got: ids[at], expected: expected[at], text: v.raw.text });
  }
}
console.log(JSON.stringify(result));
process.exit(result.mismatches.length ? 1 : 0);
