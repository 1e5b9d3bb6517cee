// A port of edge_kd's wordpiece preprocessing (bundle/preprocess.json, format "edge_kd.text.wordpiece",
// version 1) written from the documented algorithm only (edge_kd/preprocess/wordpiece.py), as an app
// team would write it. Node >= 18 or any modern browser; no dependencies. See README.md beside this file.
import { idsTensor, pythonPatternToJs } from "./hashed_ngrams.mjs";

export class Wordpiece {
  constructor(spec) {
    if (spec.format !== "edge_kd.text.wordpiece" || spec.version !== 1) {
      throw new Error(`not a version 1 wordpiece spec: ${spec.format} v${spec.version}`);
    }
    this.spec = spec;
    this.vocab = spec.vocab.split(" "); // one string, the pieces joined by single spaces
    if (this.vocab[0] !== spec.unk) throw new Error("the unknown piece must come first");
    this.index = new Map(this.vocab.map((piece, i) => [piece, i]));
    this.regex = new RegExp(pythonPatternToJs(spec.token_pattern), "gu");
  }

  words(text) {
    const t = this.spec.lowercase ? text.toLowerCase() : text;
    return Array.from(t.matchAll(this.regex), (m) => m[0]);
  }

  // Greedy longest match, left to right, over code points (as Python's str); "##" marks a continuation.
  pieces(word) {
    const cps = Array.from(word);
    if (cps.length > this.spec.max_chars_per_word) return [this.spec.unk];
    const out = [];
    let start = 0;
    while (start < cps.length) {
      let end = cps.length;
      let found = null;
      for (; end > start; end--) {
        const piece = (start > 0 ? "##" : "") + cps.slice(start, end).join("");
        if (this.index.has(piece)) {
          found = piece;
          break;
        }
      }
      if (found === null) return [this.spec.unk];
      out.push(found);
      start = end;
    }
    return out;
  }

  // Fixed-length ids: 1 + the piece's index, first max_ids kept, zero-padded.
  encode(text) {
    const maxIds = this.spec.max_ids;
    const ids = [];
    for (const word of this.words(text)) {
      for (const piece of this.pieces(word)) ids.push(1 + this.index.get(piece));
      if (ids.length >= maxIds) break;
    }
    ids.length = Math.min(ids.length, maxIds);
    while (ids.length < maxIds) ids.push(0);
    return ids;
  }

  // The tensor the artifact takes, per the contract in the same file (int32 for LiteRT, int64 elsewhere).
  tensor(text) {
    return idsTensor(this.encode(text), this.spec.input.dtype);
  }
}
