/**
 * The benchmark sets the dataset tool knows by name.
 *
 * File shapes are exact (they follow from the texmex documentation); archive
 * sizes are the approximate figures published on the texmex page. Exact
 * archive byte counts and SHA-256 digests are not recorded here because they
 * could not be measured from this build environment: fill them in (or pass
 * --size / --sha256) once a trusted copy has been downloaded, and the tool
 * will enforce them.
 */
import type { VectorFileType } from '../src/io.js';

export type Role = 'base' | 'query' | 'groundtruth' | 'learn';

export interface FileSpec {
  role: Role;
  type: VectorFileType;
  rows: number;
  dim: number;
}

export interface DatasetSpec {
  name: string;
  description: string;
  /** default source URL (ftp:// or http(s)://) */
  url: string;
  /** approximate archive size, for humans */
  approxArchiveSize: string;
  /** exact archive size in bytes, when known */
  archiveBytes: number | null;
  /** lowercase hex SHA-256 of the archive, when known */
  sha256: string | null;
  files: FileSpec[];
}

const TEXMEX = 'ftp://ftp.irisa.fr/local/texmex/corpus';

export const DATASETS: Record<string, DatasetSpec> = {
  siftsmall: {
    name: 'siftsmall',
    description: 'texmex ANN_SIFT10K: 10k SIFT descriptors (128-d), 100 queries',
    url: `${TEXMEX}/siftsmall.tar.gz`,
    approxArchiveSize: '~5.1 MB',
    archiveBytes: null,
    sha256: null,
    files: [
      { role: 'base', type: 'fvecs', rows: 10_000, dim: 128 },
      { role: 'query', type: 'fvecs', rows: 100, dim: 128 },
      { role: 'groundtruth', type: 'ivecs', rows: 100, dim: 100 },
      { role: 'learn', type: 'fvecs', rows: 25_000, dim: 128 },
    ],
  },
  sift: {
    name: 'sift',
    description: 'texmex ANN_SIFT1M: 1M SIFT descriptors (128-d), 10k queries',
    url: `${TEXMEX}/sift.tar.gz`,
    approxArchiveSize: '~161 MB',
    archiveBytes: null,
    sha256: null,
    files: [
      { role: 'base', type: 'fvecs', rows: 1_000_000, dim: 128 },
      { role: 'query', type: 'fvecs', rows: 10_000, dim: 128 },
      { role: 'groundtruth', type: 'ivecs', rows: 10_000, dim: 100 },
      { role: 'learn', type: 'fvecs', rows: 100_000, dim: 128 },
    ],
  },
  gist: {
    name: 'gist',
    description: 'texmex ANN_GIST1M: 1M GIST descriptors (960-d), 1k queries',
    url: `${TEXMEX}/gist.tar.gz`,
    approxArchiveSize: '~2.6 GB',
    archiveBytes: null,
    sha256: null,
    files: [
      { role: 'base', type: 'fvecs', rows: 1_000_000, dim: 960 },
      { role: 'query', type: 'fvecs', rows: 1_000, dim: 960 },
      { role: 'groundtruth', type: 'ivecs', rows: 1_000, dim: 100 },
      { role: 'learn', type: 'fvecs', rows: 500_000, dim: 960 },
    ],
  },
};

const ELEMENT_BYTES: Record<VectorFileType, number> = { fvecs: 4, ivecs: 4, bvecs: 1 };

/** Exact size in bytes of a file with this shape. */
export function fileBytes(f: FileSpec): number {
  return f.rows * (4 + f.dim * ELEMENT_BYTES[f.type]);
}

/**
 * Maps a member name found in an archive or a directory to its role, e.g.
 * `sift/sift_base.fvecs` -> base/fvecs, `query.bvecs` -> query/bvecs.
 * Returns null for anything else (including macOS `._` resource files).
 */
export function classifyFileName(name: string): { role: Role; type: VectorFileType } | null {
  const base = name.split('/').pop() ?? '';
  if (base.startsWith('.')) return null;
  const m = /^(?:.*[_.-])?(base|query|groundtruth|learn)\.(fvecs|ivecs|bvecs)$/.exec(base);
  if (!m) return null;
  return { role: m[1] as Role, type: m[2] as VectorFileType };
}
