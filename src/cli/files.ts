/**
 * File plumbing shared by the commands that read vector files and write
 * results: the output-path guard (every command that writes calls it before
 * doing any work), vector inputs given as .fvecs / .bvecs / .ivecs files or as
 * `-` (standard input), and a streaming writer that only ever leaves a whole
 * file behind (temporary file in the same folder, then rename).
 */
import * as fs from 'node:fs';
import { constants as fsConstants } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { InputError, errorLine } from './errors.js';
import { inspectVectorFile, readBvecs, readFvecs, readIvecs } from '../io.js';

/** What a command reads: a path, and the option or argument that named it (for messages). */
export interface NamedPath {
  path: string;
  what: string;
}

async function statOrNull(p: string): Promise<fs.Stats | null> {
  try {
    return await fs.promises.stat(p);
  } catch {
    return null;
  }
}

/**
 * Refuses, before any work starts, an output path that would lose data or
 * fail only at the end: its folder missing, not a folder or not writable; the
 * path itself a folder; or the path naming one of the inputs (the same
 * device and inode, so `./x.fvecs`, another spelling or a symlink are caught
 * too) or another output of the same command. Throws InputError (exit 2)
 * naming the option and the file.
 */
export async function checkOutputPath(
  out: NamedPath,
  inputs: readonly NamedPath[],
  otherOutputs: readonly NamedPath[] = [],
): Promise<void> {
  const where = `${out.what} ${out.path}`;
  if (out.path === '' || out.path === '-') throw new InputError(`${out.what} needs a file path`);
  const dir = path.dirname(path.resolve(out.path));
  const dirStat = await statOrNull(dir);
  if (dirStat === null) throw new InputError(`${where}: the folder ${dir} does not exist`);
  if (!dirStat.isDirectory()) throw new InputError(`${where}: ${dir} is not a folder`);
  try {
    await fs.promises.access(dir, fsConstants.W_OK | fsConstants.X_OK);
  } catch {
    throw new InputError(`${where}: the folder ${dir} is not writable`);
  }
  const outStat = await statOrNull(out.path);
  if (outStat?.isDirectory()) throw new InputError(`${where} is a folder, not a file`);
  if (outStat !== null) {
    for (const input of inputs) {
      if (input.path === '-') continue;
      const inStat = await statOrNull(input.path);
      if (inStat !== null && inStat.dev === outStat.dev && inStat.ino === outStat.ino) {
        throw new InputError(
          `${where} is the same file as ${input.what} ${input.path}; refusing to overwrite an input`,
        );
      }
    }
  }
  for (const other of otherOutputs) {
    const otherStat = await statOrNull(other.path);
    const same =
      path.resolve(other.path) === path.resolve(out.path) ||
      (outStat !== null && otherStat !== null && otherStat.dev === outStat.dev && otherStat.ino === outStat.ino);
    if (same) throw new InputError(`${where} is the same file as ${other.what} ${other.path}`);
  }
}

/** At most one input may be standard input. */
export function checkOneStdin(inputs: readonly NamedPath[]): void {
  const fromStdin = inputs.filter((i) => i.path === '-');
  if (fromStdin.length > 1) {
    throw new InputError(`only one input can be standard input (-): ${fromStdin.map((i) => i.what).join(' and ')}`);
  }
}

export type VectorKind = 'fvecs' | 'bvecs';

/** A float vector file (from .fvecs or .bvecs) that can be read in row ranges. */
export interface VectorSource {
  /** the name the user gave (`-` for standard input) */
  name: string;
  kind: VectorKind;
  dim: number;
  count: number;
  /** rows [start, end) as float32 */
  read(start: number, end: number): Promise<Float32Array>;
  /** removes the temporary copy of standard input, if any */
  close(): Promise<void>;
}

/** `err` as an InputError (exit 2) whose line names `what` (once: library messages often name the file already). */
export function inputErrorNaming(what: string, file: string, err: unknown): InputError {
  if (err instanceof InputError) return err;
  const line = errorLine(err);
  return new InputError(file !== '' && line.includes(file) ? line : `${what}: ${line}`);
}

/** Runs `fn` (reading `what`); its errors become InputError (exit 2) naming the file. */
async function asInputError<T>(what: string, fn: () => Promise<T>, file = ''): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw inputErrorNaming(what, file, err);
  }
}

/**
 * Copies standard input to a private temporary file, so it can be checked
 * and read in row ranges like any file (a pipe can be read only once).
 */
async function stdinToTempFile(): Promise<{ file: string; dir: string }> {
  const dir = await fs.promises.mkdtemp(path.join(os.tmpdir(), 'rabitq-stdin-'));
  const file = path.join(dir, 'stdin');
  const { pipeline } = await import('node:stream/promises');
  try {
    await pipeline(process.stdin, fs.createWriteStream(file, { mode: 0o600 }));
  } catch (err) {
    await fs.promises.rm(dir, { recursive: true, force: true });
    throw err;
  }
  return { file, dir };
}

/**
 * The layout of texmex bytes whose extension is unknown (standard input):
 * .fvecs and .bvecs differ in record size (4 + 4d vs 4 + d bytes), so at most
 * one of them fits every record header in a file of more than one record.
 */
async function sniffKind(file: string, what: string): Promise<VectorKind> {
  const fits: VectorKind[] = [];
  for (const kind of ['fvecs', 'bvecs'] as const) {
    try {
      await inspectVectorFile(file, kind, { scan: true });
      fits.push(kind);
    } catch {
      /* not this layout */
    }
  }
  if (fits.length === 1) return fits[0]!;
  if (fits.length === 0) throw new InputError(`${what} (standard input) is neither .fvecs nor .bvecs data`);
  throw new InputError(`${what} (standard input) could be .fvecs or .bvecs; give it as a file with its extension`);
}

/**
 * Opens a float vector input: `.fvecs`, `.bvecs` (bytes converted to float32)
 * or `-` (standard input; the layout is recognised from the record headers).
 * Only the layout is checked here; rows are read on demand.
 */
export async function openVectorSource(input: NamedPath): Promise<VectorSource> {
  const label = input.path === '-' ? `${input.what} (standard input)` : input.path;
  let file = input.path;
  let tempDir: string | null = null;
  let kind: VectorKind;
  if (input.path === '-') {
    const t = await asInputError(label, stdinToTempFile);
    file = t.file;
    tempDir = t.dir;
    try {
      kind = await sniffKind(file, input.what);
    } catch (err) {
      await fs.promises.rm(tempDir, { recursive: true, force: true });
      throw err;
    }
  } else if (/\.fvecs$/i.test(input.path)) {
    kind = 'fvecs';
  } else if (/\.bvecs$/i.test(input.path)) {
    kind = 'bvecs';
  } else {
    throw new InputError(`${input.what} ${input.path}: expected a .fvecs or .bvecs file (or - for standard input)`);
  }
  const info = await asInputError(label, () => inspectVectorFile(file, kind), input.path === '-' ? '' : file).catch(
    async (err: unknown) => {
      if (tempDir) await fs.promises.rm(tempDir, { recursive: true, force: true });
      throw err;
    },
  );
  return {
    name: input.path,
    kind,
    dim: info.dim,
    count: info.count,
    read: (start, end) =>
      asInputError(
        label,
        async () =>
          kind === 'bvecs'
            ? (await readBvecs(file, { start, end, asFloat32: true })).data
            : (await readFvecs(file, { start, end })).data,
        input.path === '-' ? '' : file,
      ),
    close: async () => {
      if (tempDir) await fs.promises.rm(tempDir, { recursive: true, force: true });
    },
  };
}

/** Reads a whole .ivecs input (or `-`), errors as InputError naming it. */
export async function readIvecsInput(input: NamedPath): Promise<{ dim: number; count: number; data: Int32Array }> {
  if (input.path !== '-' && !/\.ivecs$/i.test(input.path)) {
    throw new InputError(`${input.what} ${input.path}: expected an .ivecs file (or - for standard input)`);
  }
  if (input.path !== '-') return asInputError(input.path, () => readIvecs(input.path), input.path);
  const label = `${input.what} (standard input)`;
  const t = await asInputError(label, stdinToTempFile);
  try {
    return await asInputError(label, () => readIvecs(t.file));
  } finally {
    await fs.promises.rm(t.dir, { recursive: true, force: true });
  }
}

/**
 * Writes texmex records (int32 dimension, then the row) to a temporary file
 * next to `target`, renamed over it by commit(); abort() (or any failure)
 * deletes it, so a crash or an error never leaves a half-written `target`.
 */
export class AtomicVecsWriter {
  readonly #target: string;
  readonly #temp: string;
  #fh: fs.promises.FileHandle | null = null;

  private constructor(target: string, temp: string, fh: fs.promises.FileHandle) {
    this.#target = target;
    this.#temp = temp;
    this.#fh = fh;
  }

  static async open(target: string): Promise<AtomicVecsWriter> {
    const temp = `${target}.tmp-${process.pid}-${Math.random().toString(36).slice(2, 10)}`;
    const fh = await fs.promises.open(temp, 'wx', 0o666);
    return new AtomicVecsWriter(target, temp, fh);
  }

  /** Appends `rows` records of `dim` 4-byte elements (Int32Array or Float32Array, row-major). */
  async write(dim: number, data: Int32Array | Float32Array): Promise<void> {
    if (this.#fh === null) throw new Error(`${this.#target}: writer is closed`);
    const rows = data.length / dim;
    const buf = Buffer.allocUnsafe(rows * (4 + 4 * dim));
    const src = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    const little = os.endianness() === 'LE';
    for (let r = 0; r < rows; r++) {
      const at = r * (4 + 4 * dim);
      buf.writeInt32LE(dim, at);
      if (little) src.copy(buf, at + 4, r * 4 * dim, (r + 1) * 4 * dim);
      else if (data instanceof Float32Array)
        for (let j = 0; j < dim; j++) buf.writeFloatLE(data[r * dim + j]!, at + 4 + 4 * j);
      else for (let j = 0; j < dim; j++) buf.writeInt32LE(data[r * dim + j]!, at + 4 + 4 * j);
    }
    let off = 0;
    while (off < buf.length) off += (await this.#fh.write(buf, off, buf.length - off)).bytesWritten;
  }

  /** Flushes, closes and renames the temporary file over the target. */
  async commit(): Promise<void> {
    const fh = this.#fh;
    if (fh === null) throw new Error(`${this.#target}: writer is closed`);
    this.#fh = null;
    try {
      await fh.sync();
      await fh.close();
      await fs.promises.rename(this.#temp, this.#target);
    } catch (err) {
      await fh.close().catch(() => {});
      await fs.promises.unlink(this.#temp).catch(() => {});
      throw err;
    }
  }

  /** Deletes the temporary file (safe to call after commit or twice). */
  async abort(): Promise<void> {
    const fh = this.#fh;
    this.#fh = null;
    if (fh === null) return;
    await fh.close().catch(() => {});
    await fs.promises.unlink(this.#temp).catch(() => {});
  }
}
