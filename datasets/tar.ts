/**
 * Selective extraction of (optionally gzip-compressed) tar archives, on top
 * of node-tar's streaming parser (which understands ustar, GNU long names and
 * pax headers). Only regular files are extracted, and only those the caller
 * asks for, to paths the caller chooses, so archive member names never
 * decide where data is written.
 */
import * as fs from 'node:fs';
import { Parser, type ReadEntry } from 'tar';
import { RabitqError } from '../src/errors.js';

export class ArchiveError extends RabitqError {
  readonly file: string;

  constructor(file: string, problem: string, options?: ErrorOptions) {
    super('EBADARCHIVE', `${file}: ${problem}`, options);
    this.file = file;
  }
}

export interface TarEntry {
  name: string;
  size: number;
}

export interface ExtractedFile extends TarEntry {
  dest: string;
}

const REGULAR_FILE = new Set(['File', 'OldFile', 'ContiguousFile']);

/** Turns a node-tar or zlib failure into an ArchiveError with a plain message. */
function archiveError(archive: string, err: unknown, sawEntry: boolean): Error {
  if (err instanceof RabitqError) return err;
  const e = err as Error & { code?: string; tarCode?: string };
  const msg = e.message.replace(/^TAR_[A-Z_]+: /, '');
  if (typeof e.code === 'string' && e.code.startsWith('Z_')) {
    return new ArchiveError(archive, `corrupt gzip data (${msg})`, { cause: err });
  }
  if (e.tarCode === 'TAR_BAD_ARCHIVE' && /^Truncated input/.test(msg)) {
    return new ArchiveError(archive, `archive is truncated (${msg})`, { cause: err });
  }
  if (e.tarCode === 'TAR_BAD_ARCHIVE' || (e.tarCode === 'TAR_ENTRY_INVALID' && !sawEntry)) {
    return new ArchiveError(archive, `not a tar archive (${msg})`, { cause: err });
  }
  if (e.tarCode !== undefined) return new ArchiveError(archive, `corrupt tar archive (${msg})`, { cause: err });
  return err as Error;
}

/**
 * Streams through `archive` (.tar or .tar.gz). For each regular file,
 * `pick(entry)` returns a destination path or null to skip it. Files are
 * written to `<dest>.partial` and renamed when complete; on any failure the
 * partial files are removed. An exception thrown by `pick` stops the
 * extraction and is rethrown as is.
 */
export async function extractTar(archive: string, pick: (entry: TarEntry) => string | null): Promise<ExtractedFile[]> {
  const extracted: ExtractedFile[] = [];
  const writers: Array<{ out: fs.WriteStream; done: Promise<void> }> = [];
  let sawEntry = false;
  let failure: unknown = null;
  let fail!: (err: unknown) => void;
  // strict: every warning (bad checksum, truncation, unknown format) is an error
  const parser = new Parser({ strict: true });
  const parsed = new Promise<void>((resolve, reject) => {
    fail = (err) => {
      if (failure !== null) return;
      failure = err;
      reject(err);
    };
    parser.on('end', () => resolve());
  });
  parser.on('error', (err: unknown) => fail(err));
  parser.on('entry', (entry: ReadEntry) => {
    sawEntry = true;
    if (failure !== null || !REGULAR_FILE.has(entry.type)) {
      entry.resume();
      return;
    }
    const info: TarEntry = { name: entry.path, size: entry.size };
    let dest: string | null;
    try {
      dest = pick(info);
    } catch (err) {
      fail(err);
      entry.resume();
      return;
    }
    if (dest === null) {
      entry.resume();
      return;
    }
    const tmp = `${dest}.partial`;
    const out = fs.createWriteStream(tmp);
    const target = dest;
    const done = new Promise<void>((resolve) => {
      out.on('error', (err) => {
        fail(err);
        resolve();
      });
      out.on('close', () => {
        // A truncated archive ends its last entry early: such a file is never renamed.
        if (failure === null && out.bytesWritten === info.size) {
          try {
            fs.renameSync(tmp, target);
            extracted.push({ ...info, dest: target });
          } catch (err) {
            fail(err);
          }
        }
        resolve();
      });
    });
    writers.push({ out, done });
    entry.pipe(out);
  });

  const input = fs.createReadStream(archive);
  input.on('error', (err) => fail(err));
  input.pipe(parser);

  try {
    await parsed;
    await Promise.all(writers.map((w) => w.done));
    if (failure !== null) throw failure;
  } catch (err) {
    input.destroy();
    for (const w of writers) w.out.destroy();
    await Promise.all(writers.map((w) => w.done));
    for (const w of writers) fs.rmSync(w.out.path as string, { force: true });
    throw archiveError(archive, err, sawEntry);
  }
  return extracted;
}
