/**
 * Error classes and small argument checks shared across the package.
 *
 * Library-level failures (bad files, corrupt indexes, ...) are RabitqError
 * subclasses carrying a stable `code`. Bad arguments use the built-in
 * TypeError (wrong type) and RangeError (right type, bad value), with a
 * message that names the argument and shows the offending value.
 */

/** Base class for all errors raised by this package; `code` is stable API. */
export class RabitqError extends Error {
  readonly code: string;

  constructor(code: string, message: string, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/**
 * A vector file (.fvecs / .ivecs / .bvecs) could not be opened or is malformed.
 * `offset` is the byte offset of the problem (0 when the whole file is at fault).
 * `sysCode` keeps the operating-system error code (e.g. 'ENOENT') when there is one.
 */
export class VectorFileError extends RabitqError {
  readonly file: string;
  readonly offset: number;
  readonly sysCode: string | undefined;

  constructor(file: string, offset: number, problem: string, options?: ErrorOptions & { sysCode?: string }) {
    super('EBADFILE', `${file}: ${problem} (at byte offset ${offset})`, options);
    this.file = file;
    this.offset = offset;
    this.sysCode = options?.sysCode;
  }
}

/**
 * A saved index could not be written or read: bad magic, unknown version,
 * truncation, a checksum mismatch, inconsistent sizes (code 'EBADINDEX'), or
 * an operating-system error (code 'EIO'). `file` is the path, or 'buffer'.
 */
export class IndexFileError extends RabitqError {
  readonly file: string;

  constructor(code: 'EBADINDEX' | 'EIO', file: string, message: string, options?: ErrorOptions) {
    super(code, message, options);
    this.file = file;
  }
}

/** Short, safe rendering of a value for error messages. */
export function describeValue(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}...` : v);
  if (typeof v === 'number' || typeof v === 'bigint' || typeof v === 'boolean') return String(v);
  if (v === null) return 'null';
  if (v === undefined) return 'undefined';
  if (typeof v === 'function') return 'a function';
  const ctor = (v as { constructor?: { name?: string } }).constructor?.name;
  return ctor ? `a ${ctor}` : typeof v;
}

/** Throws TypeError unless `v` is a string (optionally non-empty). */
export function assertString(name: string, v: unknown, nonEmpty = true): asserts v is string {
  if (typeof v !== 'string' || (nonEmpty && v.length === 0)) {
    throw new TypeError(`${name} must be a ${nonEmpty ? 'non-empty ' : ''}string, got ${describeValue(v)}`);
  }
}

/**
 * Throws TypeError unless `v` is a non-empty string without NUL characters.
 * The system calls end a path at its first NUL, so 'a.rbq\0.json' would
 * silently mean 'a.rbq' (Node's own fs refuses them the same way).
 */
export function assertPath(name: string, v: unknown): asserts v is string {
  assertString(name, v);
  const at = v.indexOf('\0');
  if (at >= 0)
    throw new TypeError(`${name} must not contain NUL characters, found one at index ${at} of ${describeValue(v)}`);
}

/** Throws TypeError unless `v` is a Float32Array. */
export function assertFloat32Array(name: string, v: unknown): asserts v is Float32Array {
  if (!(v instanceof Float32Array)) throw new TypeError(`${name} must be a Float32Array, got ${describeValue(v)}`);
}

/**
 * `a`, or a copy of it in ordinary memory when it lies in a SharedArrayBuffer.
 * Some Node versions' N-API cannot hand the addon a shared array (the calls
 * failed with 'Error: Invalid argument'); the copy is the price of taking
 * them everywhere, paid only by callers that use shared memory.
 */
export function unshared<T extends Float32Array | Uint8Array | Uint32Array | BigUint64Array>(a: T): T {
  return typeof SharedArrayBuffer !== 'undefined' && a.buffer instanceof SharedArrayBuffer ? (a.slice() as T) : a;
}

/** Throws TypeError unless `v` is an Int32Array. */
export function assertInt32Array(name: string, v: unknown): asserts v is Int32Array {
  if (!(v instanceof Int32Array)) throw new TypeError(`${name} must be an Int32Array, got ${describeValue(v)}`);
}

/** Throws TypeError unless `v` is a Uint8Array (a Node Buffer is accepted). */
export function assertUint8Array(name: string, v: unknown): asserts v is Uint8Array {
  if (!(v instanceof Uint8Array)) throw new TypeError(`${name} must be a Uint8Array, got ${describeValue(v)}`);
}

/**
 * Throws unless `v` is an integer in [min, max]: TypeError for a non-number,
 * RangeError for NaN, fractions and out-of-range values.
 */
export function assertIntInRange(
  name: string,
  v: unknown,
  min: number,
  max: number = Number.MAX_SAFE_INTEGER,
): asserts v is number {
  const want = max === Number.MAX_SAFE_INTEGER ? `an integer >= ${min}` : `an integer in ${min}..${max}`;
  if (typeof v !== 'number') throw new TypeError(`${name} must be ${want}, got ${describeValue(v)}`);
  if (!Number.isInteger(v) || v < min || v > max)
    throw new RangeError(`${name} must be ${want}, got ${describeValue(v)}`);
}

/** `v` must be an integer >= 1 (e.g. `k must be an integer >= 1, got 0`). */
export function assertPositiveInt(name: string, v: unknown): asserts v is number {
  assertIntInRange(name, v, 1);
}

/** `v` must be an integer >= 0. */
export function assertNonNegativeInt(name: string, v: unknown): asserts v is number {
  assertIntInRange(name, v, 0);
}

/**
 * Checks that a row-major matrix `data` of width `dim` is whole
 * (length a multiple of dim) and returns its number of rows.
 */
export function assertRows(name: string, data: ArrayLike<unknown>, dim: number): number {
  if (data.length % dim !== 0) {
    throw new RangeError(`${name}.length (${data.length}) must be a multiple of dim (${dim})`);
  }
  return data.length / dim;
}

/**
 * Throws RangeError naming the row and column of the first NaN or
 * +/-Infinity in the row-major matrix `arr` of width `dim`.
 */
export function assertFinite(name: string, arr: ArrayLike<number>, dim: number): void {
  const n = arr.length;
  for (let i = 0; i < n; i++) {
    const x = arr[i]!;
    // x - x is NaN exactly when x is NaN or infinite
    if (x - x !== 0) {
      const row = Math.floor(i / dim);
      throw new RangeError(
        `${name} must contain only finite numbers, found ${x} at row ${row}, column ${i - row * dim}`,
      );
    }
  }
}
