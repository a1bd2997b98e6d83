/**
 * Tiny .fvecs / .ivecs writers (and plain readers used by tests and peers).
 * Each record is a little-endian int32 dimension followed by `dim` values.
 */
import { readFile, writeFile } from 'node:fs/promises';
import type { FloatVectors, IntVectors } from './types.js';

function encode(dim: number, data: Float32Array | Int32Array): Buffer {
  if (!Number.isInteger(dim) || dim <= 0) throw new Error(`invalid dim ${dim}`);
  if (data.length % dim !== 0) {
    throw new Error(`data length ${data.length} is not a multiple of dim ${dim}`);
  }
  const count = data.length / dim;
  const buf = Buffer.alloc(count * (4 + dim * 4));
  const isFloat = data instanceof Float32Array;
  let off = 0;
  for (let i = 0; i < count; i++) {
    buf.writeInt32LE(dim, off);
    off += 4;
    for (let j = 0; j < dim; j++) {
      const v = data[i * dim + j]!;
      if (isFloat) buf.writeFloatLE(v, off);
      else buf.writeInt32LE(v, off);
      off += 4;
    }
  }
  return buf;
}

export async function writeFvecsFile(path: string, dim: number, data: Float32Array): Promise<void> {
  await writeFile(path, encode(dim, data));
}

export async function writeIvecsFile(path: string, dim: number, data: Int32Array): Promise<void> {
  await writeFile(path, encode(dim, data));
}

function decode(buf: Buffer, path: string, kind: 'f' | 'i'): { dim: number; count: number; values: Float32Array | Int32Array } {
  if (buf.length < 4) throw new Error(`${path}: file is empty or truncated`);
  const dim = buf.readInt32LE(0);
  if (dim <= 0 || dim > 1 << 20) throw new Error(`${path}: invalid dimension ${dim}`);
  const rec = 4 + dim * 4;
  if (buf.length % rec !== 0) throw new Error(`${path}: size ${buf.length} is not a multiple of the record size ${rec}`);
  const count = buf.length / rec;
  const values = kind === 'f' ? new Float32Array(count * dim) : new Int32Array(count * dim);
  for (let i = 0; i < count; i++) {
    const off = i * rec;
    if (buf.readInt32LE(off) !== dim) throw new Error(`${path}: record ${i} has a different dimension`);
    for (let j = 0; j < dim; j++) {
      values[i * dim + j] = kind === 'f' ? buf.readFloatLE(off + 4 + j * 4) : buf.readInt32LE(off + 4 + j * 4);
    }
  }
  return { dim, count, values };
}

export async function readFvecsFile(path: string): Promise<FloatVectors> {
  const { dim, count, values } = decode(await readFile(path), path, 'f');
  return { dim, count, data: values as Float32Array };
}

export async function readIvecsFile(path: string): Promise<IntVectors> {
  const { dim, count, values } = decode(await readFile(path), path, 'i');
  return { dim, count, data: values as Int32Array };
}
