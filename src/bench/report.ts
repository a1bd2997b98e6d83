/** Text and markdown rendering of benchmark results. */
import { qpsAtRecall } from './envelope.js';
import type { BenchReport, MethodResult, SummaryRow, SweepPoint } from './types.js';

export const RECALL_TARGETS = [0.9, 0.95, 0.99] as const;

export function curveOf(m: MethodResult): { recall: number; qps: number }[] {
  return m.points
    .filter((p) => p.recall10 !== null && !p.error && p.qps > 0)
    .map((p) => ({ recall: p.recall10!, qps: p.qps }));
}

export function summarize(methods: readonly MethodResult[]): SummaryRow[] {
  return methods.map((m) => {
    const curve = curveOf(m);
    const at = (t: number) => {
      const v = qpsAtRecall(curve, t);
      return v === null ? null : Math.round(v * 10) / 10;
    };
    const row: SummaryRow = {
      method: m.method,
      label: m.label,
      status: m.status,
      qpsAt090: m.status === 'ok' ? at(0.9) : null,
      qpsAt095: m.status === 'ok' ? at(0.95) : null,
      qpsAt099: m.status === 'ok' ? at(0.99) : null,
      maxRecall10: curve.length ? Math.max(...curve.map((c) => c.recall)) : null,
      buildSeconds: m.buildSeconds,
      bytesPerVector: m.bytesPerVector,
    };
    if (m.error) row.error = m.error;
    return row;
  });
}

// ---------------------------------------------------------------- formatting

export function fmtInt(x: number): string {
  return Math.round(x).toLocaleString('en-US');
}

export function fmtQps(x: number | null): string {
  if (x === null || !Number.isFinite(x)) return 'n/a';
  return x >= 100 ? fmtInt(x) : x.toFixed(1);
}

export function fmtRecall(x: number | null): string {
  return x === null ? '-' : x.toFixed(4);
}

function fmtUs(x: number | null): string {
  if (x === null) return '-';
  return x >= 100 ? x.toFixed(0) : x.toFixed(1);
}

function fmtCount(x: number | null): string {
  if (x === null) return '-';
  return x >= 100 ? fmtInt(x) : x.toFixed(1);
}

export function fmtBytes(x: number | null): string {
  if (x === null) return 'n/a';
  return x >= 100 ? x.toFixed(0) : x.toFixed(1);
}

export function fmtSeconds(x: number | null): string {
  if (x === null) return 'n/a';
  return x >= 10 ? x.toFixed(1) : x.toFixed(2);
}

export function fmtMiB(bytes: number): string {
  return `${(bytes / (1024 * 1024)).toFixed(1)} MiB`;
}

function pad(s: string, w: number, left = false): string {
  return left ? s.padEnd(w) : s.padStart(w);
}

interface Column {
  title: string;
  width: number;
  cell: (p: SweepPoint) => string;
}

/**
 * A streaming sweep table: print header() once, then row(point) per point.
 * Latency and search-stat columns are included only when asked for.
 */
export function sweepTable(param: string, opts: { latency: boolean; stats: boolean }) {
  const cols: Column[] = [
    { title: param, width: Math.max(7, param.length), cell: (p) => String(p.value) },
    { title: 'R@1', width: 6, cell: (p) => fmtRecall(p.recall1) },
    { title: 'R@10', width: 6, cell: (p) => fmtRecall(p.recall10) },
    { title: 'R@100', width: 6, cell: (p) => fmtRecall(p.recall100) },
    { title: 'QPS', width: 10, cell: (p) => (p.error ? 'failed' : fmtQps(p.qps)) },
  ];
  if (opts.latency) {
    cols.push({ title: 'mean us', width: 8, cell: (p) => fmtUs(p.meanLatencyUs) });
    cols.push({ title: 'p99 us', width: 8, cell: (p) => fmtUs(p.p99LatencyUs) });
  }
  if (opts.stats) {
    cols.push({ title: 'codes/q', width: 9, cell: (p) => fmtCount(p.codesScannedPerQuery) });
    cols.push({ title: 'ex est/q', width: 9, cell: (p) => fmtCount(p.exEstimatedPerQuery ?? null) });
    cols.push({ title: 'rerank/q', width: 9, cell: (p) => fmtCount(p.rerankedPerQuery) });
  }
  const line = (cells: string[]) => '  ' + cells.map((c, i) => pad(c, cols[i]!.width)).join('  ');
  return {
    header(): string[] {
      const h = line(cols.map((c) => c.title));
      return [h, '  ' + '-'.repeat(h.length - 2)];
    },
    row(p: SweepPoint): string {
      return line(cols.map((c) => c.cell(p)));
    },
  };
}

export function sweepTableLines(m: MethodResult): string[] {
  const param = m.points[0]?.param ?? 'param';
  const t = sweepTable(param, {
    latency: m.points.some((p) => p.meanLatencyUs !== null),
    stats: m.points.some((p) => p.codesScannedPerQuery !== null),
  });
  return [...t.header(), ...m.points.map((p) => t.row(p))];
}

const SUMMARY_HEADERS = ['method', 'QPS@0.90', 'QPS@0.95', 'QPS@0.99', 'build s', 'bytes/vec'];

function summaryCells(r: SummaryRow): string[] {
  if (r.status === 'failed') {
    return [r.label, 'failed', 'failed', 'failed', fmtSeconds(r.buildSeconds), fmtBytes(r.bytesPerVector)];
  }
  return [
    r.label,
    fmtQps(r.qpsAt090),
    fmtQps(r.qpsAt095),
    fmtQps(r.qpsAt099),
    fmtSeconds(r.buildSeconds),
    fmtBytes(r.bytesPerVector),
  ];
}

/** Console summary: QPS at recall@10 targets, build time, bytes per vector. */
export function summaryTableLines(rows: readonly SummaryRow[]): string[] {
  const cells = rows.map(summaryCells);
  const widths = SUMMARY_HEADERS.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  const line = (c: string[]) => '  ' + c.map((s, i) => pad(s, widths[i]!, i === 0)).join('  ');
  const out = [line(SUMMARY_HEADERS), '  ' + widths.map((w) => '-'.repeat(w)).join('  ')];
  for (const c of cells) out.push(line(c));
  for (const r of rows) if (r.status === 'failed' && r.error) out.push(`  ${r.label} failed: ${r.error}`);
  return out;
}

function mdEscape(s: string): string {
  return s.replace(/\|/g, '\\|');
}

/** Markdown section for RESULTS.md. */
export function summaryMarkdown(report: BenchReport): string {
  const d = report.dataset;
  const m = report.machine;
  const c = report.config;
  const lines: string[] = [];
  lines.push(`### ${mdEscape(report.name)}`);
  lines.push('');
  lines.push(
    `Dataset \`${mdEscape(d.name)}\`: ${fmtInt(d.baseCount)} base vectors x ${d.dim} dims, ` +
      `${fmtInt(d.queryCount)} queries, k = ${c.k}, metric ${c.metric ?? 'l2'}. ` +
      `${c.clusters ?? 'default'} clusters, ${c.threads} thread(s), median of ${c.runs} runs.`,
  );
  lines.push('');
  lines.push(
    `Machine: ${mdEscape(m.cpuModel)} (${m.simdLevel}), CPUs allowed ${m.cpusAllowedList} of ${m.logicalCpus}, ` +
      `node ${m.node}; commit \`${report.commit}\`, ${report.date}.`,
  );
  lines.push('');
  lines.push('QPS at recall@10 (interpolated on the recall/QPS upper envelope; n/a = never reached):');
  lines.push('');
  lines.push('| method | QPS @ 0.90 | QPS @ 0.95 | QPS @ 0.99 | build (s) | bytes/vector |');
  lines.push('|---|---:|---:|---:|---:|---:|');
  for (const r of report.summary) {
    const c2 = summaryCells(r);
    lines.push(`| ${c2.map(mdEscape).join(' | ')} |`);
  }
  const skipped = report.peers.filter((p) => p.status !== 'ok');
  if (skipped.length) {
    lines.push('');
    for (const p of skipped) lines.push(`- ${p.peer}: ${p.status}${p.reason ? ` (${mdEscape(p.reason)})` : ''}`);
  }
  const failed = report.summary.filter((r) => r.status === 'failed' && r.error);
  if (failed.length) {
    if (!skipped.length) lines.push('');
    for (const r of failed) lines.push(`- ${mdEscape(r.label)} failed: ${mdEscape(r.error!)}`);
  }
  lines.push('');
  return lines.join('\n');
}
