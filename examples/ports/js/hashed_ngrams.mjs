// A port of edge_kd's text preprocessing (bundle/preprocess.json, format "edge_kd.text.hashed_ngrams",
// versions 1 and 2) written from the documented algorithm only, as an app team would write it.
// Node >= 18 or any modern browser; no dependencies. See README.md beside this file.

// Python's `\s` in a str pattern is str.isspace(); JavaScript's `\s` differs (it has U+FEFF, lacks
// U+001C..U+001F and U+0085). Spell out Python's set so both split text identically.
const PY_SPACE = "\\t\\n\\x0b\\x0c\\r\\x1c-\\x20\\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000";

export function pythonPatternToJs(pattern) {
  let out = "";
  let inClass = false;
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    if (c === "\\" && i + 1 < pattern.length) {
      const next = pattern[i + 1];
      out += next === "s" ? (inClass ? PY_SPACE : `[${PY_SPACE}]`) : c + next;
      i++;
      continue;
    }
    if (c === "[" && !inClass) inClass = true;
    else if (c === "]" && inClass) inClass = false;
    out += c;
  }
  return out;
}

// FNV-1a, 32 bits, over bytes. fnv1a32(utf8("a")) === 0xe40c292c.
export function fnv1a32(bytes) {
  let h = 0x811c9dc5;
  for (const b of bytes) {
    h ^= b;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

const utf8 = new TextEncoder();

export class HashedNgrams {
  constructor(spec) {
    if (spec.format !== "edge_kd.text.hashed_ngrams" || (spec.version !== 1 && spec.version !== 2)) {
      throw new Error(`not a version 1 or 2 hashed n-gram spec: ${spec.format} v${spec.version}`);
    }
    if (spec.hash !== "fnv1a_32") throw new Error(`unknown hash ${spec.hash}`);
    this.spec = spec;
    // Version 2: each feature emits hashes_per_feature ids in a row; version 1: one.
    this.hashesPerFeature = spec.version === 2 ? spec.hashes_per_feature : 1;
    if (!Number.isInteger(this.hashesPerFeature) || this.hashesPerFeature < 1) {
      throw new Error(`bad hashes_per_feature ${spec.hashes_per_feature}`);
    }
    // "u": match code points, not UTF-16 halves (an emoji is one token, as in Python).
    this.regex = new RegExp(pythonPatternToJs(spec.token_pattern), "gu");
  }

  tokens(text) {
    const t = this.spec.lowercase ? text.toLowerCase() : text;
    return Array.from(t.matchAll(this.regex), (m) => m[0]);
  }

  features(text) {
    const toks = this.tokens(text);
    const out = [];
    for (const n of this.spec.word_ngrams) {
      for (let i = 0; i + n <= toks.length; i++) out.push(`w${n}:` + toks.slice(i, i + n).join(" "));
    }
    for (const n of this.spec.char_ngrams) {
      for (const tok of toks) {
        const cps = Array.from(tok); // lengths and windows in code points, as Python's str
        if (cps.length < 2) continue;
        const padded = ["<", ...cps, ">"];
        for (let i = 0; i + n <= padded.length; i++) out.push(`c${n}:` + padded.slice(i, i + n).join(""));
      }
    }
    return out;
  }

  // Fixed-length ids: 1 + hash % buckets (hash j > 0 of a feature is over `${j}|${feature}`), first max_ids
  // kept, zero-padded.
  encode(text) {
    const { buckets, max_ids: maxIds } = this.spec;
    const ids = [];
    for (const f of this.features(text)) {
      for (let j = 0; j < this.hashesPerFeature; j++) {
        ids.push(1 + (fnv1a32(utf8.encode(j === 0 ? f : `${j}|${f}`)) % buckets));
      }
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

// Ids as the typed array of the bundle's input dtype (int32 for a .tflite, int64 for .pte/.ort).
export function idsTensor(ids, dtype) {
  if (dtype === "int32") return Int32Array.from(ids);
  if (dtype === "int64") return BigInt64Array.from(ids, (v) => BigInt(v));
  throw new Error(`unexpected input dtype ${dtype}`);
}
