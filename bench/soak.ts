/**
 * Soak test: a mixed load for N minutes on one index, in one process, and
 * checks that nothing leaks, fails or drifts.
 *
 *   node dist/bench/soak.js [--minutes 10] [--name <name>] [--dim 32] [--n 20000]
 *
 * Load (all at once, over 127.0.0.1 only):
 *   - HTTP clients against an in-process `serve` (src/server): POST /search
 *     (JSON and binary) and /search/batch, plus deliberately bad requests
 *     (wrong dimension, non-finite value, k = 0) that must get a 400;
 *   - callers of a batcher (src/batcher.ts) on the same index;
 *   - one mutation loop: add, remove, compact, save, load (read and mmap),
 *     toBuffer / fromBuffer. A loaded copy replaces the served index between
 *     requests (the swap a reload does), so searches run across swaps. The
 *     server on this branch has no SIGHUP / POST /admin/reload yet: the swap
 *     is done in-process, behind the object the server holds.
 * Checks:
 *   - RSS (sampled every 2 s) grows < 5% from the end of the warm-up (the
 *     first 20% of the run, at least 30 s) to the end; the index size is
 *     held steady (as many removed as added), so growth means a leak;
 *   - no request fails but the deliberate bad ones (which must fail with 400);
 *   - probes from the mutation loop (nothing mutates meanwhile): an HTTP
 *     answer equals the in-process search of the same index, and a full-probe
 *     search with a wide error bound equals exactKnn over the live vectors
 *     (a model of the index kept alongside).
 * Writes bench/results/soak-<name>.json and .md; exits 1 when a check fails.
 * Not part of `npm test`; run it on a quiet machine.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { IvfRabitqIndex, createBatcher, exactKnn, type IdArray } from '../src/index.js';
import { startServer, type ServableIndex } from '../src/server/index.js';
import { rng, gaussian } from '../src/random.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

const { values } = parseArgs({
  options: {
    minutes: { type: 'string', default: '10' },
    name: { type: 'string' },
    dim: { type: 'string', default: '32' },
    n: { type: 'string', default: '20000' },
    out: { type: 'string' },
  },
});
const minutes = Number(values.minutes);
const dim = Number(values.dim);
const baseN = Number(values.n);
if (!(minutes > 0) || !Number.isInteger(dim) || dim < 1 || !Number.isInteger(baseN) || baseN < 100) {
  console.error('usage: soak [--minutes >0] [--dim >=1] [--n >=100] [--name <name>] [--out <folder>]');
  process.exit(2);
}
const name = values.name ?? `${os.hostname()}-${minutes}min`;
const outDir = values.out ?? path.join(ROOT, 'bench', 'results');
const durationMs = minutes * 60_000;
const warmupMs = Math.max(30_000, durationMs * 0.2);

const next = rng(20250614);
function rows(count: number): Float32Array {
  const out = new Float32Array(count * dim);
  for (let i = 0; i < out.length; i++) out[i] = gaussian(next);
  return out;
}

// ---- the index, the model and the swappable handle the server holds ----------

const model = new Map<number, Float32Array>();
const initial = rows(baseN);
for (let i = 0; i < baseN; i++) model.set(i, initial.subarray(i * dim, (i + 1) * dim));
let index = (await IvfRabitqIndex.build(initial, { dim, bits: 4, seed: 7 })) as IvfRabitqIndex<IdArray>;
let nextId = baseN;

/** What the server and the batcher hold: every call goes to the current index. */
const served: ServableIndex = {
  get size() {
    return index.size;
  },
  get numClusters() {
    return index.numClusters;
  },
  get dim() {
    return index.dim;
  },
  searchBatch: (q, o) => index.searchBatch(q, o),
  search: (q, o) => index.search(q, o),
  memoryUsage: () => ({ total: index.memoryUsage().codes }),
} as ServableIndex;

const server = await startServer({ index: served, host: '127.0.0.1', port: 0, timeoutMs: 5000, capacity: 4096 });
await server.ready;
const batcher = createBatcher(served as never, { maxBatchSize: 32, capacity: 4096, timeoutMs: 5000 });
const workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'rabitq-soak-'));

// ---- counters ---------------------------------------------------------------

const counts: Record<string, number> = {};
const failures: string[] = [];
const bump = (key: string, by = 1) => (counts[key] = (counts[key] ?? 0) + by);
function fail(what: string): void {
  bump('failures');
  if (failures.length < 50) failures.push(`${new Date().toISOString()} ${what}`);
}

const deadline = Date.now() + durationMs;
const running = () => Date.now() < deadline;

// ---- HTTP clients ------------------------------------------------------------------

async function post(url: string, body: unknown, binary?: Float32Array): Promise<Response> {
  return binary
    ? fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/octet-stream' },
        body: new Uint8Array(Float32Array.from(binary).buffer),
      })
    : fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
}

async function httpClient(seed: number): Promise<void> {
  const r = rng(seed);
  while (running()) {
    const pick = r();
    const q = Array.from({ length: dim }, () => gaussian(r));
    try {
      if (pick < 0.05) {
        // Deliberately bad: must be a 400, never anything else.
        const bad = [
          { vector: q.slice(1), k: 5 },
          { vector: q.map((x, i) => (i === 0 ? 'NaN' : x)), k: 5 },
          { vector: q, k: 0 },
        ][Math.floor(r() * 3)];
        const res = await post(`${server.url}/search`, bad);
        await res.arrayBuffer();
        if (res.status === 400) bump('http.bad.rejected');
        else fail(`bad request answered ${res.status}`);
      } else if (pick < 0.25) {
        const nq = 1 + Math.floor(r() * 8);
        const vectors = Array.from({ length: nq }, () => Array.from({ length: dim }, () => gaussian(r)));
        const res = await post(`${server.url}/search/batch`, { vectors, k: 10, nprobe: 8 });
        const body = (await res.json()) as { ids?: unknown[][] };
        if (res.status !== 200 || body.ids?.length !== nq) fail(`/search/batch: ${res.status}`);
        else bump('http.batch.ok');
      } else {
        const binary = pick < 0.5;
        const res = binary
          ? await post(`${server.url}/search?k=10&nprobe=8`, null, Float32Array.from(q))
          : await post(`${server.url}/search`, { vector: q, k: 10, nprobe: 8 });
        const body = (await res.json()) as { ids?: unknown[] };
        if (res.status !== 200 || body.ids?.length !== 10) fail(`/search: ${res.status} ${JSON.stringify(body)}`);
        else bump(binary ? 'http.search.binary.ok' : 'http.search.json.ok');
      }
    } catch (e) {
      fail(`HTTP client: ${String(e)}`);
    }
  }
}

async function batcherClient(seed: number): Promise<void> {
  const r = rng(seed);
  while (running()) {
    const q = Float32Array.from({ length: dim }, () => gaussian(r));
    try {
      const res = await batcher.search(q, { k: 10, nprobe: 8 });
      if (res.ids.length !== 10) fail('batcher: wrong number of ids');
      else bump('batcher.ok');
    } catch (e) {
      fail(`batcher: ${String(e)}`);
    }
  }
}

// ---- mutations and probes ------------------------------------------------------

function sameAnswer(
  a: { ids: ArrayLike<number | bigint>; distances: ArrayLike<number> },
  b: { ids: ArrayLike<number | bigint>; distances: ArrayLike<number> },
): boolean {
  if (a.ids.length !== b.ids.length) return false;
  for (let i = 0; i < a.ids.length; i++) {
    if (Number(a.ids[i]) !== Number(b.ids[i])) return false;
    if (Math.fround(a.distances[i]!) !== Math.fround(b.distances[i]!)) return false;
  }
  return true;
}

/** Every distance exact for its id (over the model), ids sorted by distance, and >= k-1 ids shared with b. */
function nearAnswer(
  a: { ids: ArrayLike<number>; distances: ArrayLike<number> },
  b: { ids: ArrayLike<number | bigint>; distances: ArrayLike<number> },
  q: Float32Array,
  k: number,
): boolean {
  if (a.ids.length !== k || b.ids.length !== k) return false;
  const other = new Set(Array.from(b.ids, Number));
  let shared = 0;
  for (let i = 0; i < k; i++) {
    const v = model.get(Number(a.ids[i]));
    if (!v) return false;
    let d = 0;
    for (let j = 0; j < dim; j++) d += (v[j]! - q[j]!) ** 2;
    if (Math.abs(a.distances[i]! - d) > 1e-4 * (d + 1)) return false;
    if (i > 0 && a.distances[i]! < a.distances[i - 1]!) return false;
    if (other.has(Number(a.ids[i]))) shared++;
  }
  return shared >= k - 1;
}

async function probe(): Promise<void> {
  const q = rows(1);
  const k = 10;
  // 1. Over HTTP == in process, same index, same parameters. The server
  // answers through the batcher (searchBatch, which scans cluster-major), so
  // where the probabilistic error bound prunes a borderline candidate in one
  // visiting order and not in the other, the two may differ in a neighbour
  // (documented: same recall, not always the same ids). Such an answer is
  // still correct when each of its distances is the exact distance of its id
  // and it shares at least k-1 ids with search(); anything else is a failure.
  const res = await post(`${server.url}/search`, { vector: Array.from(q), k, nprobe: 8 });
  const body = (await res.json()) as { ids: number[]; distances: number[] };
  const local = index.search(q, { k, nprobe: 8 });
  if (res.status === 200 && sameAnswer(body, local)) bump('probe.http.ok');
  else if (res.status === 200 && nearAnswer(body, local, q, k)) bump('probe.http.ok.order-dependent');
  else fail(`probe: HTTP answer differs from the in-process one`);
  // 2. Full probe with a wide bound == exact k-NN over the model.
  const ids = [...model.keys()];
  const base = new Float32Array(ids.length * dim);
  ids.forEach((id, i) => base.set(model.get(id)!, i * dim));
  const want = await exactKnn(base, q, { dim, k });
  const got = index.search(q, { k, nprobe: index.numClusters, epsilon: 1e6 });
  let ok = true;
  for (let i = 0; i < k; i++) {
    const d = want.distances[i]!;
    if (Math.abs(got.distances[i]! - d) > 1e-4 * (d + 1)) ok = false;
    const tied = (i > 0 && want.distances[i - 1] === d) || (i < k - 1 && want.distances[i + 1] === d);
    if (!tied && Number(got.ids[i]) !== ids[want.ids[i]!]) ok = false;
  }
  if (!ok) fail('probe: full-probe search differs from exactKnn');
  else bump('probe.exact.ok');
}

async function mutations(): Promise<void> {
  let step = 0;
  while (running()) {
    step++;
    try {
      // Add a batch and remove as many (random live ids): the size stays put.
      const count = 50;
      const fresh = rows(count);
      const newIds = Uint32Array.from({ length: count }, () => nextId++);
      await index.add(fresh, newIds);
      newIds.forEach((id, i) => model.set(id, fresh.subarray(i * dim, (i + 1) * dim)));
      const live = [...model.keys()];
      const gone = new Set<number>();
      while (gone.size < count) gone.add(live[Math.floor(next() * live.length)]!);
      const removed = await index.remove([...gone]);
      for (const id of gone) model.delete(id);
      if (removed !== count) fail(`remove: ${removed} of ${count} removed`);
      bump('mutation.add+remove');
      if (index.size !== model.size) fail(`size ${index.size}, model ${model.size}`);
      if (step % 10 === 0) {
        await index.compact();
        bump('mutation.compact');
      }
      if (step % 15 === 0) {
        const file = path.join(workDir, 'index.rbq');
        await index.save(file);
        const mmap = step % 30 === 0;
        index = (await IvfRabitqIndex.load(file, { mmap, verify: mmap })) as IvfRabitqIndex<IdArray>;
        bump(mmap ? 'mutation.save+load.mmap' : 'mutation.save+load');
      }
      if (step % 25 === 0) {
        index = (await IvfRabitqIndex.fromBuffer(await index.toBuffer())) as IvfRabitqIndex<IdArray>;
        bump('mutation.toBuffer+fromBuffer');
      }
      if (step % 5 === 0) await probe();
    } catch (e) {
      fail(`mutation step ${step}: ${String(e)}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}

// ---- RSS ---------------------------------------------------------------------------

const start = Date.now();
const samples: { t: number; rssMb: number }[] = [];
const sampler = setInterval(() => {
  samples.push({ t: (Date.now() - start) / 1000, rssMb: process.memoryUsage().rss / 2 ** 20 });
}, 2000);

console.log(`soak: ${minutes} min, dim ${dim}, ${baseN} vectors, server ${server.url}`);
await Promise.all([...[1, 2, 3, 4].map((s) => httpClient(s)), ...[11, 12].map((s) => batcherClient(s)), mutations()]);
clearInterval(sampler);
await batcher.close();
await server.close();
fs.rmSync(workDir, { recursive: true, force: true });

// ---- verdict -----------------------------------------------------------------

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;
const afterWarmup = samples.filter((s) => s.t * 1000 >= warmupMs);
const window = Math.min(5, Math.max(1, Math.floor(afterWarmup.length / 4)));
const rssStart = median(afterWarmup.slice(0, window).map((s) => s.rssMb));
const rssEnd = median(afterWarmup.slice(-window).map((s) => s.rssMb));
const growth = (rssEnd - rssStart) / rssStart;
const checks = {
  rssGrowthUnder5Percent: growth < 0.05,
  noUnexpectedFailures: (counts.failures ?? 0) === 0,
  probesRan: (counts['probe.exact.ok'] ?? 0) > 0,
};
const passed = Object.values(checks).every(Boolean);
const summary = {
  name,
  date: new Date().toISOString(),
  node: process.version,
  cpus: os.cpus().length,
  minutes,
  dim,
  vectors: baseN,
  warmupSeconds: warmupMs / 1000,
  rssMb: { afterWarmup: rssStart, end: rssEnd, growth, max: Math.max(...samples.map((s) => s.rssMb)) },
  counts,
  failures,
  checks,
  passed,
  samples,
};
fs.mkdirSync(outDir, { recursive: true });
const base = path.join(outDir, `soak-${name}`);
fs.writeFileSync(`${base}.json`, JSON.stringify(summary, null, 2) + '\n');
const md = [
  `# Soak: ${name}`,
  '',
  `${summary.date}, Node ${summary.node}, ${summary.cpus} CPUs; ${minutes} min, dim ${dim}, ${baseN} vectors (4-bit codes), warm-up ${summary.warmupSeconds} s.`,
  '',
  `**${passed ? 'PASSED' : 'FAILED'}**: RSS after warm-up ${rssStart.toFixed(1)} MB, at the end ${rssEnd.toFixed(1)} MB (${(growth * 100).toFixed(2)}%, limit 5%); ${counts.failures ?? 0} unexpected failures.`,
  '',
  '| operation | count |',
  '| --- | ---: |',
  ...Object.entries(counts)
    .sort()
    .map(([k, v]) => `| ${k} | ${v} |`),
  '',
  "The loaded copies replace the served index in-process, behind the object the server holds; the server's own reload() (SIGHUP, POST /admin/reload) is not exercised here (it is tested in test/server_exposed.test.ts). probe.http.ok.order-dependent: the batched HTTP answer differed from search() in one neighbour where the error bound pruned in another visiting order; its distances were exact.",
  ...(failures.length ? ['', '## Failures', '', ...failures.map((f) => `- ${f}`)] : []),
  '',
].join('\n');
fs.writeFileSync(`${base}.md`, md);
console.log(md);
console.log(`wrote ${base}.json and .md`);
process.exit(passed ? 0 : 1);
