/**
 * FAISS peer: runs src/bench/peers/faiss_peer.py in a python3 subprocess and
 * converts its JSON document into MethodResults.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { writeFvecs } from '../io.js';
import { errorLine } from '../cli/errors.js';
import { PeerUnavailable, type PeerContext } from './peer_context.js';
import { repoRoot } from './paths.js';
import { roundSig } from './stats.js';
import type { MethodResult, Mode, SweepPoint } from './types.js';

export const DEFAULT_FAISS_METHODS = ['ivfflat', 'ivfpq', 'ivfrabitq', 'ivfrabitq4', 'hnsw'];

/** One row of the peer's "results" array. */
export interface FaissRow {
  method: string;
  mode?: string;
  param?: string;
  value?: number;
  recall1?: number | null;
  recall10?: number | null;
  recall100?: number | null;
  qps?: number | null;
  meanLatencyUs?: number | null;
  p99LatencyUs?: number | null;
  buildSeconds?: number | null;
  bytesPerVector?: number | null;
  error?: string | null;
}

export interface FaissDocument {
  peer?: string;
  version?: string;
  results: FaissRow[];
}

export function faissScriptPath(): string {
  return path.join(repoRoot(), 'src', 'bench', 'peers', 'faiss_peer.py');
}

export function pythonCommand(): string {
  return process.env.RABITQ_PYTHON || 'python3';
}

/** Check python3 + faiss + numpy; throws PeerUnavailable with the reason. */
export function checkFaissAvailable(script = faissScriptPath()): string {
  if (!existsSync(script)) throw new PeerUnavailable(`${path.relative(process.cwd(), script) || script} not found`);
  const py = pythonCommand();
  const r = spawnSync(py, ['-c', 'import numpy, faiss; print(faiss.__version__)'], {
    encoding: 'utf8',
    timeout: 60_000,
  });
  if (r.error) throw new PeerUnavailable(`${py} not runnable (${errorLine(r.error)})`);
  if (r.status !== 0) {
    const last = (r.stderr || '').trim().split('\n').pop() ?? '';
    throw new PeerUnavailable(
      `python faiss/numpy not importable (${last || `exit ${r.status}`}); try "pip install faiss-cpu numpy"`,
    );
  }
  return r.stdout.trim();
}

/** Extract the JSON document from the peer's stdout (tolerates stray lines before it). */
export function parseFaissOutput(stdout: string): FaissDocument {
  const text = stdout.trim();
  const attempts = [text];
  const start = text.indexOf('\n{');
  if (start >= 0) attempts.push(text.slice(start + 1));
  const lastLine = text
    .split('\n')
    .filter((l) => l.trim().startsWith('{'))
    .pop();
  if (lastLine) attempts.push(lastLine);
  for (const a of attempts) {
    try {
      const doc = JSON.parse(a) as FaissDocument;
      if (doc && Array.isArray(doc.results)) return doc;
    } catch {
      /* try the next candidate */
    }
  }
  throw new Error('faiss peer did not print a JSON document with a "results" array');
}

const num = (x: unknown): number | null => (typeof x === 'number' && Number.isFinite(x) ? x : null);

/** Group the peer's rows into one MethodResult per (method, mode). */
export function faissRowsToMethods(doc: FaissDocument, threads: number): MethodResult[] {
  const groups = new Map<string, FaissRow[]>();
  for (const row of doc.results) {
    const mode = row.mode === 'batch' ? 'batch' : 'single';
    const name = String(row.method ?? 'unknown').replace(/^faiss[-_]/, '');
    const key = `${name}\u0000${mode}`;
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key)!.push(row);
  }
  const methods: MethodResult[] = [];
  for (const [key, rows] of groups) {
    const [method, mode] = key.split('\u0000') as [string, Mode];
    const points: SweepPoint[] = [];
    const errors: string[] = [];
    for (const r of rows) {
      if (r.error) {
        errors.push(String(r.error));
        if (r.value === undefined || r.value === null) continue;
      }
      const qps = num(r.qps);
      points.push({
        param: r.param ?? 'param',
        value: num(r.value) ?? 0,
        recall1: num(r.recall1),
        recall10: num(r.recall10),
        recall100: num(r.recall100),
        qps: qps === null ? 0 : roundSig(qps),
        qpsRuns: qps === null ? [] : [roundSig(qps)],
        meanLatencyUs: num(r.meanLatencyUs),
        p99LatencyUs: num(r.p99LatencyUs),
        clustersProbedPerQuery: null,
        codesScannedPerQuery: null,
        rerankedPerQuery: null,
        ...(r.error ? { error: String(r.error) } : {}),
      });
    }
    const good = points.filter((p) => !p.error && p.qps > 0);
    const firstNum = (f: (r: FaissRow) => unknown) => rows.map((r) => num(f(r))).find((v) => v !== null) ?? null;
    const bt = mode === 'batch' ? threads : 1;
    const res: MethodResult = {
      method: `faiss-${method}`,
      label: `faiss ${method} (${mode === 'single' ? 'single' : `batch, ${bt} thread${bt === 1 ? '' : 's'}`})`,
      peer: 'faiss',
      mode,
      threads: bt,
      status: good.length > 0 ? 'ok' : 'failed',
      buildSeconds: firstNum((r) => r.buildSeconds),
      bytesPerVector: firstNum((r) => r.bytesPerVector),
      notes: `faiss ${doc.version ?? ''}`.trim(),
      points,
    };
    if (errors.length) res.error = errors[0];
    if (good.length === 0 && !res.error) res.error = 'no successful sweep point';
    methods.push(res);
  }
  return methods;
}

export async function benchFaiss(ctx: PeerContext): Promise<{ methods: MethodResult[]; version: string }> {
  const script = faissScriptPath();
  const version = checkFaissAvailable(script);
  const { paths } = ctx.dataset;
  const args = [
    script,
    '--base',
    paths.base,
    '--query',
    paths.query,
    '--gt',
    paths.groundTruth,
    '--k',
    String(ctx.k),
    '--metric',
    ctx.metric,
    '--clusters',
    String(ctx.clusters),
    '--methods',
    ctx.faissMethods.join(','),
    '--nprobe',
    ctx.nprobe.join(','),
    '--efsearch',
    ctx.efSearch.join(','),
    '--runs',
    String(ctx.runs),
    '--warmup',
    String(ctx.warmup),
    '--threads',
    String(ctx.threads),
    '--mode',
    ctx.modes.join(','),
  ];
  if (ctx.centroids) {
    const file = path.join(ctx.tmpDir, 'centroids.fvecs');
    await writeFvecs(file, { dim: ctx.dataset.dim, data: ctx.centroids });
    args.push('--centroids', file);
  }
  if (ctx.dataset.queries.count < ctx.dataset.queryCountInFile) args.push('--nq', String(ctx.dataset.queries.count));
  ctx.log(`  ${pythonCommand()} ${args.join(' ')}`);

  const { code, signal, stdout, lastErr } = await new Promise<{
    code: number | null;
    signal: NodeJS.Signals | null;
    stdout: string;
    lastErr: string;
  }>((resolve, reject) => {
    const child = spawn(pythonCommand(), args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let errBuf = '';
    let lastErr = '';
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => {
      errBuf += d.toString();
      let nl: number;
      while ((nl = errBuf.indexOf('\n')) >= 0) {
        const line = errBuf.slice(0, nl).trimEnd();
        errBuf = errBuf.slice(nl + 1);
        if (line) {
          lastErr = line;
          ctx.log(`  ${line}`);
        }
      }
    });
    child.on('error', reject);
    child.on('close', (code, signal) => {
      if (errBuf.trim()) {
        lastErr = errBuf.trim();
        ctx.log(`  ${lastErr}`);
      }
      resolve({ code, signal, stdout: Buffer.concat(out).toString('utf8'), lastErr });
    });
  });
  if (code !== 0) {
    throw new Error(
      `faiss_peer.py ${signal ? `killed by ${signal}` : `exited with code ${code}`}${lastErr ? `: ${lastErr}` : ''}`,
    );
  }
  const doc = parseFaissOutput(stdout);
  return { methods: faissRowsToMethods(doc, ctx.threads), version: doc.version ?? version };
}
