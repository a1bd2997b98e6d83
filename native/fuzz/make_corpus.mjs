// Writes the seed corpus of the fuzzers (native/fuzz/corpus/<target>/) from
// small indexes made by the library itself: run from the repo root after
// `npx tsc` and a build of the addon. The files are committed; rerun only
// when the file format changes (then commit the new seeds).
//
//   node native/fuzz/make_corpus.mjs
//
// Kept small (< 250 KB in all; ~20 KB per index, most of it the 64 rows of
// rounding offsets): libFuzzer learns the structure from a handful of valid
// files and mutates from there. Both fuzz targets read the same kind of
// input (a whole index file), so they share one corpus folder.
import fs from 'node:fs';
import path from 'node:path';
import { IvfRabitqIndex } from '../../dist/src/index.js';
import { crc32c, parseLayout } from '../../test/fixtures/index-file.mjs';

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), 'corpus');

function data(n, dim, seed) {
  let s = seed >>> 0;
  const v = new Float32Array(n * dim);
  for (let i = 0; i < v.length; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    v[i] = Math.round((s / 2 ** 32 - 0.5) * 200) / 10;
  }
  return v;
}

// The same index in format version 1 (13 META fields, 1-bit codes only): the
// reader still loads version 1, and the library no longer writes it.
function toVersion1(buf) {
  const L = parseLayout(buf);
  const parts = L.sections.map((s) => {
    let bytes = buf.subarray(s.offset, s.offset + s.length);
    if (s.name === 'META') bytes = bytes.subarray(0, 13 * 8);
    if (s.name === 'EXCD' || s.name === 'EXFT') throw new Error('version 1 has 1-bit codes only');
    return { tag: s.tag, bytes };
  });
  const headerLen = 32 + 32 * parts.length + 4;
  let at = Math.ceil(headerLen / 64) * 64;
  const offsets = parts.map((p) => {
    const o = at;
    at = Math.ceil((o + p.bytes.length) / 64) * 64;
    return o;
  });
  const fileLen = parts.length ? offsets.at(-1) + parts.at(-1).bytes.length : headerLen;
  const out = Buffer.alloc(fileLen);
  out.write('RABITQIX', 0, 'latin1');
  out.writeUInt32LE(1, 8);
  out.writeUInt32LE(0x01020304, 12);
  out.writeUInt32LE(headerLen, 16);
  out.writeUInt32LE(parts.length, 20);
  out.writeBigUInt64LE(BigInt(fileLen), 24);
  parts.forEach((p, i) => {
    const e = 32 + 32 * i;
    out.writeUInt32LE(p.tag, e);
    out.writeBigUInt64LE(BigInt(offsets[i]), e + 8);
    out.writeBigUInt64LE(BigInt(p.bytes.length), e + 16);
    out.writeUInt32LE(crc32c(p.bytes), e + 24);
    p.bytes.copy(out, offsets[i]);
  });
  out.writeUInt32LE(crc32c(out, 0, headerLen - 4), headerLen - 4);
  return out;
}

const seeds = {};
async function make(name, n, dim, options, mutate) {
  const ix = await IvfRabitqIndex.build(data(n, dim, n * 31 + dim), { dim, seed: 3, threads: 1, ...options });
  if (mutate) await mutate(ix);
  seeds[name] = await ix.toBuffer();
}

await make('l2-4bit', 40, 8, { numClusters: 3, bits: 4 });
await make('cosine-9bit-novec', 33, 5, { numClusters: 2, bits: 9, metric: 'cosine', storeVectors: false });
await make('ip-2bit-ids64', 24, 12, {
  numClusters: 2,
  bits: 2,
  metric: 'ip',
  ids: BigUint64Array.from({ length: 24 }, (_, i) => 2n ** 40n + 7n * BigInt(i)),
});
await make('l2-1bit-ids32-removed', 30, 6, { numClusters: 4, ids: Uint32Array.from({ length: 30 }, (_, i) => 1000 + i) }, (ix) =>
  ix.remove(Uint32Array.from({ length: 10 }, (_, i) => 1000 + 2 * i)),
);
await make('l2-empty', 10, 4, { numClusters: 2 }, (ix) => ix.remove(Uint32Array.from({ length: 10 }, (_, i) => i)));
await make('l2-dense-rotation', 20, 7, { numClusters: 2, rotation: 'dense', bits: 3 });
seeds['v1-l2-removed'] = toVersion1(seeds['l2-1bit-ids32-removed']);
// Its v2 form adds little over the others and the corpus must stay small.
delete seeds['l2-1bit-ids32-removed'];
// A few truncations: the fuzzer reaches the "truncated" paths at once.
const whole = seeds['l2-4bit'];
for (const cut of [0, 15, 40, 200]) seeds[`truncated-${cut}`] = whole.subarray(0, cut);

// Both loaders must accept every untruncated seed as written.
for (const [name, b] of Object.entries(seeds)) {
  if (name.startsWith('truncated')) continue;
  const back = await IvfRabitqIndex.fromBuffer(b);
  if (back.size < 0) throw new Error(name);
}

let total = 0;
// regression-*.rbq: inputs that crashed a fuzzer once; v2-*.rbq: files of
// format version 2 (the reader converts their multi-bit factors), written
// by an older build. Both kept, not regenerated.
const dir = path.join(root, 'index');
fs.mkdirSync(dir, { recursive: true });
for (const f of fs.readdirSync(dir)) {
  if (f.startsWith('regression-') || f.startsWith('v2-')) total += fs.statSync(path.join(dir, f)).size;
  else fs.rmSync(path.join(dir, f));
}
for (const [name, b] of Object.entries(seeds)) {
  fs.writeFileSync(path.join(dir, `${name}.rbq`), b);
  total += b.length;
}
console.log(`${Object.keys(seeds).length} seeds, ${total} bytes in all`);
if (total > 250_000) throw new Error('the seed corpus should stay under 250 KB');
