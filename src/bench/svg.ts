/**
 * Minimal dependency-free SVG plot: recall@10 on x (linear) against QPS on y
 * (log10), one polyline `<path>` per method. Axes, grid and legend swatches
 * use <line>/<rect> so the number of <path> elements equals the number of
 * plotted curves.
 */

export interface PlotSeries {
  label: string;
  points: { recall: number; qps: number }[];
}

export interface PlotOptions {
  title?: string;
  width?: number;
  height?: number;
  xLabel?: string;
  yLabel?: string;
}

const PALETTE = [
  '#d62728',
  '#1f77b4',
  '#2ca02c',
  '#ff7f0e',
  '#9467bd',
  '#8c564b',
  '#e377c2',
  '#17becf',
  '#7f7f7f',
  '#bcbd22',
];

export function escapeXml(s: string): string {
  return s
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&apos;');
}

/** Dash patterns cycled once the palette is exhausted, so curves stay distinguishable. */
const DASHES = ['', '6,3', '2,3', '8,3,2,3'];

function seriesStyle(i: number): { color: string; dash: string } {
  return {
    color: PALETTE[i % PALETTE.length]!,
    dash: DASHES[Math.floor(i / PALETTE.length) % DASHES.length]!,
  };
}

function fmt(x: number): string {
  return (Math.round(x * 100) / 100).toString();
}

function qpsTick(v: number): string {
  if (v >= 1e6) return `${v / 1e6}M`;
  if (v >= 1e3) return `${v / 1e3}k`;
  return String(v);
}

export function renderRecallQpsSvg(series: readonly PlotSeries[], opts: PlotOptions = {}): string {
  // Legend on the right, sized for the longest label (about 7 px per character).
  const longest = Math.max(0, ...series.map((s) => s.label.length));
  const legendW = Math.min(420, Math.max(140, 40 + longest * 7));
  const width = opts.width ?? 580 + legendW;
  const height = opts.height ?? Math.max(520, 110 + series.length * 20);
  const title = opts.title ?? 'recall@10 vs QPS';
  const xLabel = opts.xLabel ?? 'recall@10';
  const yLabel = opts.yLabel ?? 'queries per second (log scale)';
  const margin = { left: 80, right: legendW, top: 48, bottom: 60 };
  const plotW = width - margin.left - margin.right;
  const plotH = height - margin.top - margin.bottom;

  const usable = series.map((s) => ({
    label: s.label,
    points: s.points
      .filter((p) => Number.isFinite(p.recall) && Number.isFinite(p.qps) && p.qps > 0)
      .map((p) => ({ recall: p.recall, qps: p.qps })),
  }));
  const all = usable.flatMap((s) => s.points);

  // x range: from a round tenth below the smallest recall up to 1.
  let xMin = 0;
  const xMax = 1;
  if (all.length > 0) {
    const minR = Math.min(...all.map((p) => p.recall));
    xMin = Math.max(0, Math.min(0.9, Math.floor(minR * 10) / 10));
  }
  // y range: the 1-2-5 steps just around the data.
  let yMinExp = 0;
  let yMaxExp = 1;
  if (all.length > 0) {
    const lo = Math.min(...all.map((p) => p.qps));
    const hi = Math.max(...all.map((p) => p.qps));
    const steps = (e: number) => [1, 2, 5].map((m) => m * 10 ** e);
    const below = steps(Math.floor(Math.log10(lo))).filter((v) => v <= lo * (1 + 1e-9));
    const above = [...steps(Math.floor(Math.log10(hi))), 10 ** (Math.floor(Math.log10(hi)) + 1)].filter(
      (v) => v >= hi * (1 - 1e-9),
    );
    yMinExp = Math.log10(below[below.length - 1] ?? 10 ** Math.floor(Math.log10(lo)));
    yMaxExp = Math.log10(above[0] ?? 10 ** Math.ceil(Math.log10(hi)));
    if (yMaxExp - yMinExp < 1e-9) yMaxExp = yMinExp + 1;
  }
  const sx = (r: number) => margin.left + ((r - xMin) / (xMax - xMin)) * plotW;
  const sy = (q: number) => margin.top + plotH - ((Math.log10(q) - yMinExp) / (yMaxExp - yMinExp)) * plotH;

  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
  );
  out.push(`<rect x="0" y="0" width="${width}" height="${height}" fill="#ffffff"/>`);
  out.push(
    `<text x="${fmt(margin.left + plotW / 2)}" y="28" text-anchor="middle" font-size="16">${escapeXml(title)}</text>`,
  );

  // Grid and ticks.
  out.push('<g class="grid" stroke="#e0e0e0" stroke-width="1">');
  const xStep = xMax - xMin > 0.5 ? 0.1 : 0.05;
  const xTicks: number[] = [];
  for (let t = xMin; t <= xMax + 1e-9; t += xStep) xTicks.push(Math.round(t * 1000) / 1000);
  for (const t of xTicks) {
    out.push(`<line x1="${fmt(sx(t))}" y1="${margin.top}" x2="${fmt(sx(t))}" y2="${margin.top + plotH}"/>`);
  }
  const yTicks: number[] = [];
  for (let e = Math.floor(yMinExp) - 1; e <= Math.ceil(yMaxExp); e++) {
    for (const m of [1, 2, 5]) {
      const v = m * 10 ** e;
      const lv = Math.log10(v);
      if (lv >= yMinExp - 1e-9 && lv <= yMaxExp + 1e-9) yTicks.push(v);
    }
  }
  for (const v of yTicks) {
    const major = Math.abs(Math.log10(v) - Math.round(Math.log10(v))) < 1e-9;
    out.push(
      `<line x1="${margin.left}" y1="${fmt(sy(v))}" x2="${margin.left + plotW}" y2="${fmt(sy(v))}"${major ? '' : ' stroke-dasharray="2,3"'}/>`,
    );
  }
  out.push('</g>');

  // Axes.
  out.push('<g class="axes" stroke="#000000" stroke-width="1">');
  out.push(
    `<line x1="${margin.left}" y1="${margin.top + plotH}" x2="${margin.left + plotW}" y2="${margin.top + plotH}"/>`,
  );
  out.push(`<line x1="${margin.left}" y1="${margin.top}" x2="${margin.left}" y2="${margin.top + plotH}"/>`);
  out.push('</g>');
  out.push('<g class="tick-labels" fill="#000000">');
  for (const t of xTicks) {
    out.push(
      `<text x="${fmt(sx(t))}" y="${margin.top + plotH + 18}" text-anchor="middle">${t.toFixed(xStep < 0.1 ? 2 : 1)}</text>`,
    );
  }
  for (const v of yTicks) {
    out.push(`<text x="${margin.left - 8}" y="${fmt(sy(v) + 4)}" text-anchor="end">${qpsTick(v)}</text>`);
  }
  out.push('</g>');
  out.push(
    `<text x="${fmt(margin.left + plotW / 2)}" y="${height - 16}" text-anchor="middle">${escapeXml(xLabel)}</text>`,
  );
  out.push(
    `<text transform="translate(20 ${fmt(margin.top + plotH / 2)}) rotate(-90)" text-anchor="middle">${escapeXml(yLabel)}</text>`,
  );

  // Curves: points in increasing recall order.
  usable.forEach((s, i) => {
    const { color, dash } = seriesStyle(i);
    const pts = [...s.points].sort((a, b) => a.recall - b.recall || b.qps - a.qps);
    const inRange = pts.filter((p) => p.recall >= xMin - 1e-9);
    const d = inRange.map((p, j) => `${j === 0 ? 'M' : 'L'}${fmt(sx(p.recall))},${fmt(sy(p.qps))}`).join(' ');
    out.push(`<g class="series" data-label="${escapeXml(s.label)}">`);
    out.push(
      `<path d="${d || 'M0,0'}" fill="none" stroke="${color}" stroke-width="2"${dash ? ` stroke-dasharray="${dash}"` : ''}/>`,
    );
    for (const p of inRange) {
      out.push(`<circle cx="${fmt(sx(p.recall))}" cy="${fmt(sy(p.qps))}" r="3" fill="${color}"/>`);
    }
    out.push('</g>');
  });

  // Legend.
  const lx = margin.left + plotW + 16;
  out.push('<g class="legend">');
  usable.forEach((s, i) => {
    const { color, dash } = seriesStyle(i);
    const y = margin.top + 8 + i * 20;
    out.push(
      `<line x1="${lx}" y1="${y - 4}" x2="${lx + 20}" y2="${y - 4}" stroke="${color}" stroke-width="3"${dash ? ` stroke-dasharray="${dash}"` : ''}/>`,
    );
    out.push(`<text x="${lx + 26}" y="${y}">${escapeXml(s.label)}</text>`);
  });
  out.push('</g>');
  out.push('</svg>');
  return out.join('\n') + '\n';
}
