/**
 * `rabitq info <index-file> [--verify] [--json]`: what a saved index holds,
 * read from its header, section table and META section (docs/FORMAT.md),
 * after the library's own load checks (mapped, so even a large file is cheap).
 */
import * as fs from 'node:fs';
import type { CliIo } from './io.js';
import { inputErrorNaming } from './files.js';
import { InputError } from './errors.js';

/** Sizes and offsets of the container header (docs/FORMAT.md, "Header"). */
const MAGIC = 'RABITQIX';
const FIXED_HEADER = 32;
const ENTRY_BYTES = 32;
const MAX_SECTIONS = 1024;
/** META field order (native/core/ivf/format.h, MetaField). */
const META_FIELDS = [
  'dim',
  'paddedDim',
  'metric',
  'numClusters',
  'queryBits',
  'rotation',
  'idBytes',
  'storeVectors',
  'count',
  'seed',
  'nextId',
  'roundingRows',
  'rotationFloats',
  'bits',
] as const;
type MetaName = (typeof META_FIELDS)[number];
/** Sections whose checksums a mapped load leaves to verify() (docs/FORMAT.md, "Checks at load"). */
const LAZY_SECTIONS = new Set(['CODE', 'FACT', 'EXCD', 'EXFT', 'IDS', 'VECS']);

export interface SectionInfo {
  tag: string;
  offset: number;
  bytes: number;
  crc32c: string;
}

export interface IndexFileInfo {
  file: string;
  fileBytes: number;
  formatVersion: number;
  dim: number;
  paddedDim: number;
  vectors: number;
  clusters: number;
  metric: string;
  bits: number;
  idBits: number;
  rawVectors: boolean;
  rotation: string;
  queryBits: number;
  seed: string;
  nextId: string;
  sections: SectionInfo[];
  checksums: 'all verified' | 'header and small sections verified';
  /** Build times are not part of the file format; null says so explicitly. */
  buildTimings: null;
}

function readExact(fd: number, pos: number, len: number, file: string): Buffer {
  const buf = Buffer.alloc(len);
  let got = 0;
  while (got < len) {
    const n = fs.readSync(fd, buf, got, len - got, pos + got);
    if (n === 0) throw new InputError(`index ${file}: ends at byte ${pos + got}, inside its header`);
    got += n;
  }
  return buf;
}

/** The header, section table and META of an index file (its checks are the loader's; this only reads). */
function readHeader(file: string): Omit<IndexFileInfo, 'checksums' | 'buildTimings'> {
  const fd = fs.openSync(file, 'r');
  try {
    const size = fs.fstatSync(fd).size;
    const head = readExact(fd, 0, FIXED_HEADER, file);
    if (head.toString('latin1', 0, 8) !== MAGIC) throw new InputError(`index ${file}: not a rabitq index (bad magic)`);
    const version = head.readUInt32LE(8);
    const count = head.readUInt32LE(20);
    if (count > MAX_SECTIONS)
      throw new InputError(`index ${file}: ${count} sections in the header (at most ${MAX_SECTIONS})`);
    const table = readExact(fd, FIXED_HEADER, count * ENTRY_BYTES, file);
    const sections: SectionInfo[] = [];
    for (let i = 0; i < count; i++) {
      const e = table.subarray(i * ENTRY_BYTES, (i + 1) * ENTRY_BYTES);
      sections.push({
        tag: e.toString('latin1', 0, 4).trimEnd(),
        offset: Number(e.readBigUInt64LE(8)),
        bytes: Number(e.readBigUInt64LE(16)),
        crc32c: e.readUInt32LE(24).toString(16).padStart(8, '0'),
      });
    }
    const metaSection = sections.find((s) => s.tag === 'META');
    if (!metaSection) throw new InputError(`index ${file}: no META section`);
    const fields = Math.min(META_FIELDS.length, Math.floor(metaSection.bytes / 8));
    const metaBytes = readExact(fd, metaSection.offset, fields * 8, file);
    const meta = {} as Record<MetaName, bigint>;
    for (let i = 0; i < fields; i++) meta[META_FIELDS[i]!] = metaBytes.readBigUInt64LE(8 * i);
    const num = (name: MetaName, dflt = 0) => (meta[name] === undefined ? dflt : Number(meta[name]));
    return {
      file,
      fileBytes: size,
      formatVersion: version,
      dim: num('dim'),
      paddedDim: num('paddedDim'),
      vectors: num('count'),
      clusters: num('numClusters'),
      metric: ['l2', 'cosine', 'ip'][num('metric')] ?? `unknown (${num('metric')})`,
      // version 1 files have no bits field: their codes are all 1-bit
      bits: num('bits', 1),
      idBits: num('idBytes') * 8,
      rawVectors: num('storeVectors') === 1,
      rotation: ['fht', 'dense'][num('rotation')] ?? `unknown (${num('rotation')})`,
      queryBits: num('queryBits'),
      seed: String(meta.seed ?? ''),
      nextId: String(meta.nextId ?? ''),
      sections,
    };
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Reads what `file` holds after the library's load checks: a mapped load
 * checks the header, the section table and the small sections; `verify`
 * also checks the CRC-32C of every big section (reads the whole file).
 */
export async function indexFileInfo(file: string, verify: boolean): Promise<IndexFileInfo> {
  const { IvfRabitqIndex } = await import('../ivf_index.js');
  try {
    await IvfRabitqIndex.load(file, { mmap: true, verify });
  } catch (err) {
    throw inputErrorNaming(`index ${file}`, file, err);
  }
  let header;
  try {
    header = readHeader(file);
  } catch (err) {
    throw inputErrorNaming(`index ${file}`, file, err);
  }
  return { ...header, checksums: verify ? 'all verified' : 'header and small sections verified', buildTimings: null };
}

function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 2 ** 20) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 2 ** 30) return `${(n / 2 ** 20).toFixed(1)} MiB`;
  return `${(n / 2 ** 30).toFixed(2)} GiB`;
}

export function formatIndexInfo(i: IndexFileInfo): string {
  const unchecked = i.sections.filter((s) => LAZY_SECTIONS.has(s.tag)).map((s) => s.tag.trim());
  const lines = [
    `${i.file}: rabitq index, format version ${i.formatVersion}, ${bytes(i.fileBytes)}`,
    `  vectors       ${i.vectors} x ${i.dim} (padded to ${i.paddedDim})`,
    `  clusters      ${i.clusters}`,
    `  metric        ${i.metric}`,
    `  bits          ${i.bits} per dimension${i.bits > 1 ? ' (multi-bit codes)' : ''}`,
    `  ids           ${i.idBits}-bit (next id ${i.nextId})`,
    `  raw vectors   ${i.rawVectors ? 'kept (exact re-ranking)' : 'not kept (distances are estimates)'}`,
    `  build         rotation ${i.rotation}, seed ${i.seed}, query bits ${i.queryBits}; build timings are not recorded in the file`,
    `  checksums     ${
      i.checksums === 'all verified'
        ? 'all sections verified (CRC-32C)'
        : `header and small sections verified; ${unchecked.join(', ')} not verified (use --verify)`
    }`,
    `  sections`,
    ...i.sections.map(
      (s) =>
        `    ${s.tag.padEnd(5)} ${bytes(s.bytes).padStart(10)}  at ${String(s.offset).padStart(12)}  crc32c ${s.crc32c}`,
    ),
  ];
  return lines.join('\n') + '\n';
}

export async function indexInfoCommand(
  file: string,
  opts: { verify: boolean; json: boolean },
  io: CliIo,
): Promise<number> {
  const info = await indexFileInfo(file, opts.verify);
  io.stdout(opts.json ? JSON.stringify(info, null, 2) + '\n' : formatIndexInfo(info));
  return 0;
}
