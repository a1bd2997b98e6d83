// Cost of the JS -> native call itself: search() on a 1-vector index (k = 1).
// Run: taskset -c 1 node bench/micro/js_call_overhead.mjs (after npm run build:ts).
import { IvfRabitqIndex } from '../../dist/src/index.js';
const idx = await IvfRabitqIndex.build(Float32Array.from([1, 2, 3, 4]), { dim: 4 });
const q = Float32Array.from([1, 2, 3, 5]);
for (let i = 0; i < 200000; i++) idx.search(q, { k: 1, nprobe: 1 });
const res = [];
for (let r = 0; r < 5; r++) {
  const n = 500000;
  const t = process.hrtime.bigint();
  for (let i = 0; i < n; i++) idx.search(q, { k: 1, nprobe: 1 });
  res.push(Number(process.hrtime.bigint() - t) / n);
}
res.sort((a, b) => a - b);
console.log(
  'search() on a 1-vector index: median ns/call',
  res[2].toFixed(0),
  'all',
  res.map((x) => x.toFixed(0)).join(' '),
);
