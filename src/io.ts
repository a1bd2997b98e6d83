/**
 * Readers and writers for the texmex vector formats.
 *
 * A file is a sequence of records; each record is a little-endian int32
 * dimension `d` followed by `d` elements: float32 (.fvecs), int32 (.ivecs)
 * or uint8 (.bvecs). All records of a file must have the same `d`.
 *
 * Readers return one typed array holding `count * dim` elements in row-major
 * order, filled in a single pass over the requested rows. A `[start, end)`
 * row range reads only the bytes of those rows (positional reads), so files
 * larger than memory can be processed piece by piece.
 */
import * as fs from 'node:fs';
import { endianness } from 'node:os';
import {
  VectorFileError,
  assertFloat32Array,
  assertInt32Array,
  assertIntInRange,
  assertPath,
  assertUint8Array,
  describeValue,
} from './errors.js';

export interface VectorFile<T> {
  /** elements per vector */
  dim: number;
  /** number of vectors in `data` */
  count: number;
  /** `count * dim` elements, row-major */
  data: T;
}

export interface ReadOptions {
  /** first row to read (default 0) */
  start?: number;
  /** one past the last row to read (default: all rows) */
  end?: number;
}

export interface BvecsReadOptions extends ReadOptions {
  /** return the bytes converted to a Float32Array */
  asFloat32?: boolean;
}

export type VectorFileType = 'fvecs' | 'ivecs' | 'bvecs';

export interface VectorFileInfo {
  type: VectorFileType;
  dim: number;
  /** number of records in the file */
  count: number;
  /** file size in bytes */
  bytes: number;
  /** bytes per record (4 + dim * element size) */
  recordBytes: number;
}

/** Largest dimension accepted by readers and writers. */
export const MAX_DIM = 65536;

const ELEMENT_BYTES: Record<VectorFileType, number> = { fvecs: 4, ivecs: 4, bvecs: 1 };
const LITTLE_ENDIAN_HOST = endianness() === 'LE';
/** Target size of one staging read / write. */
const CHUNK_BYTES = 4 << 20;

// ---------------------------------------------------------------------------
// Shared read logic, written once as a generator of positional read requests
// and driven either synchronously or asynchronously.

interface ReadRequest {
  buf: Uint8Array;
  /** absolute file position */
  pos: number;
  len: number;
}
/** Yields read requests; receives the number of bytes actually read (< len only at EOF). */
type ReadPlan<R> = Generator<ReadRequest, R, number>;

type OutKind = 'f32' | 'i32' | 'u8';

interface RangeArgs {
  start: number | undefined;
  end: number | undefined;
}

function checkRangeArgs(opts: unknown): RangeArgs {
  if (opts === undefined || opts === null) return { start: undefined, end: undefined };
  if (typeof opts !== 'object') throw new TypeError(`opts must be an object, got ${describeValue(opts)}`);
  const { start, end } = opts as ReadOptions;
  if (start !== undefined) assertIntInRange('opts.start', start, 0);
  if (end !== undefined) assertIntInRange('opts.end', end, 0);
  if (start !== undefined && end !== undefined && end < start) {
    throw new RangeError(`opts.end must be >= opts.start, got start=${start}, end=${end}`);
  }
  return { start, end };
}

function int32At(b: Uint8Array, at: number): number {
  return b[at]! | (b[at + 1]! << 8) | (b[at + 2]! << 16) | (b[at + 3]! << 24);
}

function elementName(bytes: number): string {
  return bytes === 1 ? '1-byte elements (.bvecs)' : '4-byte elements (.fvecs/.ivecs)';
}

/** Reads the header and checks the file shape; returns the validated layout. */
function* inspectPlan(file: string, size: number, type: VectorFileType): ReadPlan<VectorFileInfo> {
  if (size === 0) throw new VectorFileError(file, 0, 'file is empty');
  const hdr = new Uint8Array(4);
  const got = yield { buf: hdr, pos: 0, len: Math.min(4, size) };
  if (size < 4 || got < 4)
    throw new VectorFileError(file, 0, `file is only ${Math.min(size, got)} bytes, too short for a record header`);
  const dim = int32At(hdr, 0);
  if (dim < 1 || dim > MAX_DIM) {
    throw new VectorFileError(
      file,
      0,
      `invalid dimension ${dim} in the first record header (must be 1..${MAX_DIM}); is this really a .${type} file?`,
    );
  }
  const elem = ELEMENT_BYTES[type];
  const recordBytes = 4 + dim * elem;
  const headerAt = function* (pos: number): Generator<ReadRequest, number, number> {
    const h = new Uint8Array(4);
    const n = yield { buf: h, pos, len: 4 };
    return n === 4 ? int32At(h, 0) : NaN;
  };
  // Would the layout fit the other element size? (e.g. a .bvecs file read as .fvecs)
  const wrongTypeHint = function* (): Generator<ReadRequest, string, number> {
    const otherElem = elem === 1 ? 4 : 1;
    const otherRecord = 4 + dim * otherElem;
    if (size % otherRecord !== 0) return '';
    const fits = size === otherRecord || (yield* headerAt(otherRecord)) === dim;
    return fits ? `; the file layout matches ${elementName(otherElem)}, not .${type}` : '';
  };
  const mismatch = function* (pos: number, got: number): Generator<ReadRequest, VectorFileError, number> {
    const hint = yield* wrongTypeHint();
    return new VectorFileError(
      file,
      pos,
      `record ${pos / recordBytes} header says dimension ${got} but record 0 says ${dim} (record size ${recordBytes} bytes)${hint}`,
    );
  };
  if (size % recordBytes !== 0) {
    if (size >= recordBytes + 4) {
      const second = yield* headerAt(recordBytes);
      if (second !== dim) throw yield* mismatch(recordBytes, second);
    }
    const partial = size - (size % recordBytes);
    const hint = yield* wrongTypeHint();
    throw new VectorFileError(
      file,
      partial,
      `truncated record: file size ${size} is not a whole number of ${recordBytes}-byte records (dim ${dim}); the partial record starts here${hint}`,
    );
  }
  const count = size / recordBytes;
  // Cheap extra checks that catch most wrong-type files even when only a few rows are read.
  for (const row of count >= 3 ? [1, count - 1] : count === 2 ? [1] : []) {
    const h = yield* headerAt(row * recordBytes);
    if (h !== dim) throw yield* mismatch(row * recordBytes, h);
  }
  return { type, dim, count, bytes: size, recordBytes };
}

function* readPlan(
  file: string,
  size: number,
  type: VectorFileType,
  range: RangeArgs,
  out: OutKind,
): ReadPlan<VectorFile<Float32Array | Int32Array | Uint8Array>> {
  const info = yield* inspectPlan(file, size, type);
  const { dim, count: total, recordBytes } = info;
  const start = range.start ?? 0;
  const end = range.end ?? total;
  if (start > total)
    throw new RangeError(`opts.start must be <= the number of rows (${total}) in ${file}, got ${start}`);
  if (end > total) throw new RangeError(`opts.end must be <= the number of rows (${total}) in ${file}, got ${end}`);
  if (end < start) throw new RangeError(`opts.end must be >= opts.start, got start=${start}, end=${end}`);
  const count = end - start;
  const n = count * dim;
  let data: Float32Array | Int32Array | Uint8Array;
  try {
    data = out === 'f32' ? new Float32Array(n) : out === 'i32' ? new Int32Array(n) : new Uint8Array(n);
  } catch {
    throw new RangeError(
      `cannot allocate ${n} elements for rows [${start}, ${end}) of ${file}; read a smaller row range with opts.start/opts.end`,
    );
  }
  if (count === 0) return { dim, count, data };

  const elem = ELEMENT_BYTES[type];
  const rowBytes = dim * elem;
  const rowsPerChunk = Math.max(1, Math.min(count, Math.floor(CHUNK_BYTES / recordBytes)));
  const chunk = new Uint8Array(rowsPerChunk * recordBytes);
  const outBytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  const view = new DataView(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  const byteCopy = out === 'u8' || (LITTLE_ENDIAN_HOST && elem === 4);

  for (let row = start; row < end; row += rowsPerChunk) {
    const rows = Math.min(rowsPerChunk, end - row);
    const len = rows * recordBytes;
    const pos = row * recordBytes;
    const got = yield { buf: chunk, pos, len };
    if (got < len) {
      throw new VectorFileError(
        file,
        pos + got,
        `file ended early (it was ${size} bytes when opened; was it modified while being read?)`,
      );
    }
    for (let r = 0; r < rows; r++) {
      const p = r * recordBytes;
      const h = int32At(chunk, p);
      if (h !== dim) {
        throw new VectorFileError(
          file,
          pos + p,
          `record ${row + r} header says dimension ${h} but record 0 says ${dim}`,
        );
      }
      const o = (row - start + r) * dim;
      if (byteCopy) {
        outBytes.set(chunk.subarray(p + 4, p + 4 + rowBytes), o * elem);
      } else if (out === 'f32' && elem === 1) {
        (data as Float32Array).set(chunk.subarray(p + 4, p + 4 + rowBytes), o);
      } else if (out === 'f32') {
        const d = data as Float32Array;
        for (let j = 0; j < dim; j++) d[o + j] = view.getFloat32(p + 4 + 4 * j, true);
      } else {
        const d = data as Int32Array;
        for (let j = 0; j < dim; j++) d[o + j] = view.getInt32(p + 4 + 4 * j, true);
      }
    }
  }
  return { dim, count, data };
}

// ---------------------------------------------------------------------------
// Drivers

function openError(file: string, err: unknown): VectorFileError {
  const e = err as NodeJS.ErrnoException;
  const sysCode = typeof e?.code === 'string' ? e.code : undefined;
  const what =
    sysCode === 'ENOENT'
      ? 'no such file (ENOENT)'
      : `cannot open (${sysCode ?? ''}${sysCode ? ': ' : ''}${e?.message ?? String(err)})`;
  return new VectorFileError(file, 0, what, { cause: err, sysCode });
}

function readError(file: string, pos: number, err: unknown): VectorFileError {
  const e = err as NodeJS.ErrnoException;
  return new VectorFileError(file, pos, `read failed (${e?.message ?? String(err)})`, { cause: err, sysCode: e?.code });
}

/**
 * Open flags for the readers: O_NONBLOCK so that opening a FIFO (or a
 * device that blocks on open) returns at once, to be refused by the
 * regular-file check, instead of waiting forever for a writer. It changes
 * nothing for regular files, whose reads never block.
 */
const READ_FLAGS = fs.constants.O_RDONLY | (fs.constants.O_NONBLOCK ?? 0);

function runSync<R>(file: string, plan: (size: number) => ReadPlan<R>): R {
  let fd: number;
  try {
    fd = fs.openSync(file, READ_FLAGS);
  } catch (err) {
    throw openError(file, err);
  }
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile()) throw new VectorFileError(file, 0, 'not a regular file');
    const gen = plan(st.size);
    let step = gen.next();
    while (!step.done) {
      const { buf, pos, len } = step.value;
      let got = 0;
      try {
        while (got < len) {
          const n = fs.readSync(fd, buf, got, len - got, pos + got);
          if (n === 0) break;
          got += n;
        }
      } catch (err) {
        throw readError(file, pos + got, err);
      }
      step = gen.next(got);
    }
    return step.value;
  } finally {
    fs.closeSync(fd);
  }
}

async function runAsync<R>(file: string, plan: (size: number) => ReadPlan<R>): Promise<R> {
  let fh: fs.promises.FileHandle;
  try {
    fh = await fs.promises.open(file, READ_FLAGS);
  } catch (err) {
    throw openError(file, err);
  }
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw new VectorFileError(file, 0, 'not a regular file');
    const gen = plan(st.size);
    let step = gen.next();
    while (!step.done) {
      const { buf, pos, len } = step.value;
      let got = 0;
      try {
        while (got < len) {
          const { bytesRead } = await fh.read(buf, got, len - got, pos + got);
          if (bytesRead === 0) break;
          got += bytesRead;
        }
      } catch (err) {
        throw readError(file, pos + got, err);
      }
      step = gen.next(got);
    }
    return step.value;
  } finally {
    await fh.close();
  }
}

function checkType(type: unknown): VectorFileType {
  if (type !== 'fvecs' && type !== 'ivecs' && type !== 'bvecs') {
    throw new TypeError(`type must be 'fvecs', 'ivecs' or 'bvecs', got ${describeValue(type)}`);
  }
  return type;
}

// ---------------------------------------------------------------------------
// Public readers

/** Reads rows [start, end) of an .fvecs file. */
export async function readFvecs(path: string, opts?: ReadOptions): Promise<VectorFile<Float32Array>> {
  assertPath('path', path);
  const range = checkRangeArgs(opts);
  return (await runAsync(path, (size) => readPlan(path, size, 'fvecs', range, 'f32'))) as VectorFile<Float32Array>;
}

/** Reads rows [start, end) of an .ivecs file. */
export async function readIvecs(path: string, opts?: ReadOptions): Promise<VectorFile<Int32Array>> {
  assertPath('path', path);
  const range = checkRangeArgs(opts);
  return (await runAsync(path, (size) => readPlan(path, size, 'ivecs', range, 'i32'))) as VectorFile<Int32Array>;
}

/** Reads rows [start, end) of a .bvecs file; `asFloat32: true` converts the bytes to float32. */
export function readBvecs(
  path: string,
  opts: BvecsReadOptions & { asFloat32: true },
): Promise<VectorFile<Float32Array>>;
export function readBvecs(
  path: string,
  opts?: BvecsReadOptions & { asFloat32?: false },
): Promise<VectorFile<Uint8Array>>;
export function readBvecs(path: string, opts?: BvecsReadOptions): Promise<VectorFile<Uint8Array | Float32Array>>;
export async function readBvecs(path: string, opts?: BvecsReadOptions): Promise<VectorFile<Uint8Array | Float32Array>> {
  assertPath('path', path);
  const range = checkRangeArgs(opts);
  const out: OutKind = bvecsOut(opts);
  return (await runAsync(path, (size) => readPlan(path, size, 'bvecs', range, out))) as VectorFile<
    Uint8Array | Float32Array
  >;
}

function bvecsOut(opts: BvecsReadOptions | undefined): OutKind {
  const f = opts?.asFloat32;
  if (f !== undefined && typeof f !== 'boolean')
    throw new TypeError(`opts.asFloat32 must be a boolean, got ${describeValue(f)}`);
  return f ? 'f32' : 'u8';
}

/** Synchronous {@link readFvecs}. */
export function readFvecsSync(path: string, opts?: ReadOptions): VectorFile<Float32Array> {
  assertPath('path', path);
  const range = checkRangeArgs(opts);
  return runSync(path, (size) => readPlan(path, size, 'fvecs', range, 'f32')) as VectorFile<Float32Array>;
}

/** Synchronous {@link readIvecs}. */
export function readIvecsSync(path: string, opts?: ReadOptions): VectorFile<Int32Array> {
  assertPath('path', path);
  const range = checkRangeArgs(opts);
  return runSync(path, (size) => readPlan(path, size, 'ivecs', range, 'i32')) as VectorFile<Int32Array>;
}

/** Synchronous {@link readBvecs}. */
export function readBvecsSync(path: string, opts: BvecsReadOptions & { asFloat32: true }): VectorFile<Float32Array>;
export function readBvecsSync(path: string, opts?: BvecsReadOptions & { asFloat32?: false }): VectorFile<Uint8Array>;
export function readBvecsSync(path: string, opts?: BvecsReadOptions): VectorFile<Uint8Array | Float32Array>;
export function readBvecsSync(path: string, opts?: BvecsReadOptions): VectorFile<Uint8Array | Float32Array> {
  assertPath('path', path);
  const range = checkRangeArgs(opts);
  const out = bvecsOut(opts);
  return runSync(path, (size) => readPlan(path, size, 'bvecs', range, out)) as VectorFile<Uint8Array | Float32Array>;
}

/**
 * Checks a vector file's layout without loading it: first header, dimension
 * bounds, whole records. With `scan: true` every record header is read and
 * compared too (the whole file is read, in chunks).
 */
export async function inspectVectorFile(
  path: string,
  type: VectorFileType,
  opts?: { scan?: boolean },
): Promise<VectorFileInfo> {
  assertPath('path', path);
  checkType(type);
  return runAsync(path, (size) => (opts?.scan ? scanPlan(path, size, type) : inspectPlan(path, size, type)));
}

/** Synchronous {@link inspectVectorFile}. */
export function inspectVectorFileSync(path: string, type: VectorFileType, opts?: { scan?: boolean }): VectorFileInfo {
  assertPath('path', path);
  checkType(type);
  return runSync(path, (size) => (opts?.scan ? scanPlan(path, size, type) : inspectPlan(path, size, type)));
}

function* scanPlan(file: string, size: number, type: VectorFileType): ReadPlan<VectorFileInfo> {
  const info = yield* inspectPlan(file, size, type);
  const { dim, count, recordBytes } = info;
  const rowsPerChunk = Math.max(1, Math.min(count, Math.floor(CHUNK_BYTES / recordBytes)));
  const chunk = new Uint8Array(rowsPerChunk * recordBytes);
  for (let row = 0; row < count; row += rowsPerChunk) {
    const rows = Math.min(rowsPerChunk, count - row);
    const pos = row * recordBytes;
    const len = rows * recordBytes;
    const got = yield { buf: chunk, pos, len };
    if (got < len) throw new VectorFileError(file, pos + got, 'file ended early (was it modified while being read?)');
    for (let r = 0; r < rows; r++) {
      const h = int32At(chunk, r * recordBytes);
      if (h !== dim)
        throw new VectorFileError(
          file,
          pos + r * recordBytes,
          `record ${row + r} header says dimension ${h} but record 0 says ${dim}`,
        );
    }
  }
  return info;
}

// ---------------------------------------------------------------------------
// Writers

interface WriteInput<T> {
  dim: number;
  data: T;
}

function checkWriteArgs(
  path: unknown,
  input: unknown,
  type: VectorFileType,
): { dim: number; bytes: Uint8Array; rows: number; src: Float32Array | Int32Array | Uint8Array } {
  assertPath('path', path);
  if (typeof input !== 'object' || input === null) {
    throw new TypeError(`second argument must be an object { dim, data }, got ${describeValue(input)}`);
  }
  const { dim, data } = input as WriteInput<unknown>;
  if (type === 'fvecs') assertFloat32Array('data', data);
  else if (type === 'ivecs') assertInt32Array('data', data);
  else assertUint8Array('data', data);
  assertIntInRange('dim', dim, 1, MAX_DIM);
  const src = data as Float32Array | Int32Array | Uint8Array;
  if (src.length === 0) throw new RangeError('data must hold at least one row, got an empty array');
  if (src.length % dim !== 0) throw new RangeError(`data.length (${src.length}) must be a multiple of dim (${dim})`);
  return { dim, bytes: new Uint8Array(src.buffer, src.byteOffset, src.byteLength), rows: src.length / dim, src };
}

/** Encodes records in chunks of about CHUNK_BYTES. */
function* encodeChunks(
  dim: number,
  rows: number,
  src: Float32Array | Int32Array | Uint8Array,
  bytes: Uint8Array,
  elem: number,
): Generator<Uint8Array> {
  const rowBytes = dim * elem;
  const recordBytes = 4 + rowBytes;
  const rowsPerChunk = Math.max(1, Math.min(rows, Math.floor(CHUNK_BYTES / recordBytes)));
  const chunk = new Uint8Array(rowsPerChunk * recordBytes);
  const view = new DataView(chunk.buffer);
  const byteCopy = elem === 1 || LITTLE_ENDIAN_HOST;
  for (let row = 0; row < rows; row += rowsPerChunk) {
    const n = Math.min(rowsPerChunk, rows - row);
    for (let r = 0; r < n; r++) {
      const p = r * recordBytes;
      view.setInt32(p, dim, true);
      const s = (row + r) * dim;
      if (byteCopy) {
        chunk.set(bytes.subarray(s * elem, s * elem + rowBytes), p + 4);
      } else if (src instanceof Float32Array) {
        for (let j = 0; j < dim; j++) view.setFloat32(p + 4 + 4 * j, src[s + j]!, true);
      } else {
        for (let j = 0; j < dim; j++) view.setInt32(p + 4 + 4 * j, src[s + j]!, true);
      }
    }
    yield chunk.subarray(0, n * recordBytes);
  }
}

function tempPath(path: string): string {
  return `${path}.tmp-${process.pid}-${Math.random().toString(36).slice(2, 10)}`;
}

async function writeAsync(path: string, input: unknown, type: VectorFileType): Promise<void> {
  const { dim, bytes, rows, src } = checkWriteArgs(path, input, type);
  const tmp = tempPath(path);
  const fh = await fs.promises.open(tmp, 'w');
  let ok = false;
  try {
    for (const chunk of encodeChunks(dim, rows, src, bytes, ELEMENT_BYTES[type])) {
      let off = 0;
      while (off < chunk.length) {
        const { bytesWritten } = await fh.write(chunk, off, chunk.length - off);
        off += bytesWritten;
      }
    }
    await fh.close();
    await fs.promises.rename(tmp, path);
    ok = true;
  } finally {
    if (!ok) {
      await fh.close().catch(() => {});
      await fs.promises.unlink(tmp).catch(() => {});
    }
  }
}

function writeSync(path: string, input: unknown, type: VectorFileType): void {
  const { dim, bytes, rows, src } = checkWriteArgs(path, input, type);
  const tmp = tempPath(path);
  const fd = fs.openSync(tmp, 'w');
  let closed = false;
  let ok = false;
  try {
    for (const chunk of encodeChunks(dim, rows, src, bytes, ELEMENT_BYTES[type])) {
      let off = 0;
      while (off < chunk.length) off += fs.writeSync(fd, chunk, off, chunk.length - off);
    }
    fs.closeSync(fd);
    closed = true;
    fs.renameSync(tmp, path);
    ok = true;
  } finally {
    if (!ok) {
      if (!closed)
        try {
          fs.closeSync(fd);
        } catch {
          /* already failing */
        }
      try {
        fs.unlinkSync(tmp);
      } catch {
        /* nothing to clean */
      }
    }
  }
}

/** Writes `data` (rows of `dim` float32) as an .fvecs file, via a temporary file and rename. */
export function writeFvecs(path: string, input: { dim: number; data: Float32Array }): Promise<void> {
  return writeAsync(path, input, 'fvecs');
}

/** Writes `data` (rows of `dim` int32) as an .ivecs file. */
export function writeIvecs(path: string, input: { dim: number; data: Int32Array }): Promise<void> {
  return writeAsync(path, input, 'ivecs');
}

/** Writes `data` (rows of `dim` uint8) as a .bvecs file. */
export function writeBvecs(path: string, input: { dim: number; data: Uint8Array }): Promise<void> {
  return writeAsync(path, input, 'bvecs');
}

/** Synchronous {@link writeFvecs}. */
export function writeFvecsSync(path: string, input: { dim: number; data: Float32Array }): void {
  writeSync(path, input, 'fvecs');
}

/** Synchronous {@link writeIvecs}. */
export function writeIvecsSync(path: string, input: { dim: number; data: Int32Array }): void {
  writeSync(path, input, 'ivecs');
}

/** Synchronous {@link writeBvecs}. */
export function writeBvecsSync(path: string, input: { dim: number; data: Uint8Array }): void {
  writeSync(path, input, 'bvecs');
}
