/**
 * A small streaming reader for (optionally gzip-compressed) tar archives.
 *
 * Understands the ustar layout plus the two common long-name extensions
 * (GNU 'L' records and POSIX pax 'x' headers), which covers archives made by
 * GNU tar, bsdtar and most libraries. Only regular files are extracted, and
 * only those the caller asks for, to paths the caller chooses, so archive
 * member names never decide where data is written.
 */
import * as fs from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { RabitqError } from '../src/errors.js';

export class ArchiveError extends RabitqError {
  readonly file: string;
  readonly offset: number;

  constructor(file: string, offset: number, problem: string, options?: ErrorOptions) {
    super('EBADARCHIVE', `${file}: ${problem} (at uncompressed byte offset ${offset})`, options);
    this.file = file;
    this.offset = offset;
  }
}

export interface TarEntry {
  name: string;
  size: number;
}

export interface ExtractedFile extends TarEntry {
  dest: string;
}

const BLOCK = 512;
const MAX_META = 1 << 20;
const FLUSH_BYTES = 1 << 20;

function cString(b: Buffer, start: number, len: number): string {
  const s = b.subarray(start, start + len);
  const end = s.indexOf(0);
  return s.subarray(0, end < 0 ? s.length : end).toString('utf8');
}

function octal(b: Buffer, start: number, len: number): number {
  if (b[start]! & 0x80) {
    // GNU base-256 encoding for large values
    let v = 0;
    for (let i = start + 1; i < start + len; i++) v = v * 256 + b[i]!;
    return v;
  }
  const s = cString(b, start, len).trim();
  if (s === '') return 0;
  if (!/^[0-7]+$/.test(s)) return NaN;
  return parseInt(s, 8);
}

function checksumOk(h: Buffer): boolean {
  const stored = octal(h, 148, 8);
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : h[i]!;
  return stored === sum;
}

function parsePax(buf: Buffer): Map<string, string> {
  const out = new Map<string, string>();
  let p = 0;
  while (p < buf.length) {
    const sp = buf.indexOf(0x20, p);
    if (sp < 0) break;
    const len = Number(buf.subarray(p, sp).toString('ascii'));
    if (!Number.isInteger(len) || len <= 0 || p + len > buf.length) break;
    const rec = buf.subarray(sp + 1, p + len - 1).toString('utf8'); // drop trailing newline
    const eq = rec.indexOf('=');
    if (eq > 0) out.set(rec.slice(0, eq), rec.slice(eq + 1));
    p += len;
  }
  return out;
}

async function isGzip(file: string): Promise<boolean> {
  const fh = await fs.promises.open(file, 'r');
  try {
    const b = Buffer.alloc(2);
    const { bytesRead } = await fh.read(b, 0, 2, 0);
    return bytesRead === 2 && b[0] === 0x1f && b[1] === 0x8b;
  } finally {
    await fh.close();
  }
}

/**
 * Streams through `archive` (.tar or .tar.gz). For each regular file,
 * `pick(entry)` returns a destination path or null to skip it. Files are
 * written to `<dest>.partial` and renamed when complete.
 */
export async function extractTar(archive: string, pick: (entry: TarEntry) => string | null): Promise<ExtractedFile[]> {
  const extracted: ExtractedFile[] = [];
  const header = Buffer.alloc(BLOCK);
  let headerFill = 0;
  let position = 0; // uncompressed offset of the next byte to consume
  let remaining = 0; // data bytes left in the current entry
  let padding = 0;
  let ended = false;
  let sawHeader = false;
  let entryStart = 0;
  // current entry: a file being written, or metadata being collected, or skipped data
  let sink: { fh: fs.promises.FileHandle; tmp: string; entry: ExtractedFile; pending: Buffer[]; pendingBytes: number } | null = null;
  let meta: { kind: 'L' | 'x'; parts: Buffer[] } | null = null;
  let longName: string | null = null;
  let pax: Map<string, string> | null = null;

  const flush = async (): Promise<void> => {
    if (!sink || sink.pendingBytes === 0) return;
    const buf = sink.pending.length === 1 ? sink.pending[0]! : Buffer.concat(sink.pending);
    sink.pending = [];
    sink.pendingBytes = 0;
    let off = 0;
    while (off < buf.length) off += (await sink.fh.write(buf, off, buf.length - off)).bytesWritten;
  };

  const endEntry = async (): Promise<void> => {
    if (sink) {
      await flush();
      await sink.fh.close();
      await fs.promises.rename(sink.tmp, sink.entry.dest);
      extracted.push(sink.entry);
      sink = null;
    } else if (meta) {
      const data = Buffer.concat(meta.parts);
      if (meta.kind === 'L') longName = cString(data, 0, data.length);
      else pax = parsePax(data);
      meta = null;
    }
  };

  const startEntry = async (h: Buffer): Promise<void> => {
    entryStart = position - BLOCK;
    if (h.every((x) => x === 0)) {
      ended = true; // end-of-archive marker
      return;
    }
    if (!checksumOk(h)) {
      throw new ArchiveError(archive, entryStart, sawHeader ? 'corrupt tar header (bad checksum)' : 'not a tar archive (bad header checksum)');
    }
    sawHeader = true;
    const type = String.fromCharCode(h[156]!);
    let size = octal(h, 124, 12);
    if (!Number.isFinite(size)) throw new ArchiveError(archive, entryStart, 'corrupt tar header (bad size field)');
    const paxSize = pax?.get('size');
    if (paxSize !== undefined && /^\d+$/.test(paxSize)) size = Number(paxSize);
    remaining = size;
    padding = (BLOCK - (size % BLOCK)) % BLOCK;

    if (type === 'L' || type === 'x') {
      if (size > MAX_META) throw new ArchiveError(archive, entryStart, `oversized ${type} header (${size} bytes)`);
      meta = { kind: type, parts: [] };
    } else if (type === '0' || type === '\0' || type === '7') {
      const magic = h.subarray(257, 263).toString('latin1');
      let name = cString(h, 0, 100);
      if (magic === 'ustar\0') {
        const prefix = cString(h, 345, 155);
        if (prefix) name = `${prefix}/${name}`;
      }
      name = pax?.get('path') ?? longName ?? name;
      const dest = pick({ name, size });
      if (dest !== null) {
        const tmp = `${dest}.partial`;
        sink = { fh: await fs.promises.open(tmp, 'w'), tmp, entry: { name, size, dest }, pending: [], pendingBytes: 0 };
      }
    }
    if (type !== 'L' && type !== 'x' && type !== 'g') {
      longName = null;
      pax = null;
    }
    if (remaining === 0) await endEntry();
  };

  const consume = async (source: AsyncIterable<Buffer>): Promise<void> => {
    for await (const chunk of source) {
      let p = 0;
      while (p < chunk.length && !ended) {
        if (remaining > 0) {
          const take = Math.min(remaining, chunk.length - p);
          const piece = chunk.subarray(p, p + take);
          if (sink) {
            sink.pending.push(piece);
            sink.pendingBytes += take;
            if (sink.pendingBytes >= FLUSH_BYTES) await flush();
          } else if (meta) {
            meta.parts.push(Buffer.from(piece));
          }
          p += take;
          position += take;
          remaining -= take;
          if (remaining === 0) await endEntry();
        } else if (padding > 0) {
          const take = Math.min(padding, chunk.length - p);
          p += take;
          position += take;
          padding -= take;
        } else {
          const take = Math.min(BLOCK - headerFill, chunk.length - p);
          chunk.copy(header, headerFill, p, p + take);
          headerFill += take;
          p += take;
          position += take;
          if (headerFill === BLOCK) {
            headerFill = 0;
            await startEntry(header);
          }
        }
      }
      // after the end marker the rest (zero padding) is ignored, but keep draining the stream
    }
    if (!sawHeader) throw new ArchiveError(archive, 0, 'empty or not a tar archive');
    if (remaining > 0 || padding > 0 || headerFill > 0) {
      throw new ArchiveError(archive, position, `archive is truncated (inside the entry that starts at ${entryStart})`);
    }
  };

  const gz = await isGzip(archive);
  try {
    if (gz) await pipeline(fs.createReadStream(archive), createGunzip(), consume);
    else await pipeline(fs.createReadStream(archive), consume);
  } catch (err) {
    const s = sink as { fh: fs.promises.FileHandle; tmp: string } | null;
    if (s) {
      await s.fh.close().catch(() => {});
      await fs.promises.unlink(s.tmp).catch(() => {});
    }
    if (err instanceof RabitqError) throw err;
    const code = (err as NodeJS.ErrnoException).code ?? '';
    if (code.startsWith('Z_')) {
      throw new ArchiveError(archive, position, `corrupt gzip data (${(err as Error).message})`, { cause: err });
    }
    throw err;
  }
  return extracted;
}
