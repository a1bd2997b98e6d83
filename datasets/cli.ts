/**
 * Dataset tool: `npm run dataset -- <command>` (runs dist/datasets/cli.js).
 *
 *   <name>              download + verify + unpack a benchmark set into datasets/data/<name>/
 *   list                known sets and what is installed
 *   import <dir>        register vector files already on disk
 *   groundtruth <dir>   compute groundtruth.ivecs with the library's exact k-NN
 *
 * Exit codes: 0 success, 1 failure (network, corrupt download, ...),
 * 2 bad input (unknown name or option, missing or malformed files given by the user).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { processIo, type CliIo } from '../src/cli/io.js';
import { parseCommandLine, stringOption } from '../src/cli/options.js';
import { RabitqError, VectorFileError } from '../src/errors.js';
import {
  inspectVectorFile,
  readBvecs,
  readFvecs,
  readIvecs,
  writeIvecs,
  type VectorFileInfo,
  type VectorFileType,
} from '../src/io.js';
import { download, DownloadError } from './download.js';
import { DATASETS, classifyFileName, fileBytes, type DatasetSpec, type FileSpec, type Role } from './registry.js';
import { extractTar } from './tar.js';

/** Contract of the library's exact k-NN (src/index.ts). */
export type ExactKnn = (
  base: Float32Array,
  queries: Float32Array,
  opts: { dim: number; k: number },
) => Promise<{ ids: Int32Array; distances: Float32Array }>;

export interface CliDeps {
  /** overrides the lazily imported exactKnn (tests) */
  exactKnn?: ExactKnn;
}

/** Bad command-line input: reported without a stack trace, exit code 2. */
export class UsageError extends RabitqError {
  constructor(message: string) {
    super('EUSAGE', message);
  }
}

const ROLES: Role[] = ['base', 'query', 'groundtruth', 'learn'];
const COMMANDS = new Set(['list', 'import', 'groundtruth', 'help']);
const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const MANIFEST = 'dataset.json';

const USAGE = `Usage: npm run dataset -- <command> [options]

Commands:
  <name>                 download, verify and unpack a dataset into <data-dir>/<name>/
                         known names: ${Object.keys(DATASETS).join(', ')}; any other name needs --url
  list                   show the known datasets and what is installed
  import <dir>           register .fvecs/.ivecs/.bvecs files already on disk
  groundtruth <dir>      compute <dir>/groundtruth.ivecs (exact k-NN of query vs base)

Options:
  --url <url>            source archive (ftp://, http://, https://); env RABITQ_DATASET_URL
  --data-dir <dir>       dataset root (default: datasets/data in the package); env RABITQ_DATA_DIR
  --size <bytes>         expected archive size
  --sha256 <hex>         expected archive SHA-256
  --skip-learn           do not unpack the learn set
  --keep-archive         keep the archive after unpacking
  --force                download / overwrite even if already present
  --retries <n>          retries without progress before giving up (default 5)
  --retry-delay <ms>     first retry delay (default 1000, doubles up to 30 s)
  --timeout <s>          network idle timeout (default 60)
  --name <name>          import: dataset name (default: the directory's name)
  --symlink              import: symlink the files instead of copying them
  --k <n>                groundtruth: neighbours per query (default 100)
  --out <file>           groundtruth: output path (default <dir>/groundtruth.ivecs)
  --quiet                no progress output
  -h, --help             this text
`;

interface Manifest {
  name: string;
  source: string;
  files: Partial<Record<Role, { file: string; type: VectorFileType; rows: number; dim: number; bytes: number }>>;
}

interface Options {
  url?: string;
  dataDir: string;
  size?: number;
  sha256?: string;
  skipLearn: boolean;
  keepArchive: boolean;
  force: boolean;
  retries: number;
  retryDelayMs: number;
  timeoutMs: number;
  name?: string;
  symlink: boolean;
  k: number;
  out?: string;
  quiet: boolean;
}

function packageRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (fs.existsSync(path.join(dir, 'package.json'))) return dir;
    const up = path.dirname(dir);
    if (up === dir) return process.cwd();
    dir = up;
  }
}

function intFlag(flag: string, v: string | undefined, def: number, min: number): number {
  if (v === undefined) return def;
  if (!/^\d+$/.test(v) || Number(v) < min || !Number.isSafeInteger(Number(v))) {
    throw new UsageError(`--${flag} must be an integer >= ${min}, got ${JSON.stringify(v)}`);
  }
  return Number(v);
}

function parse(argv: string[], env: NodeJS.ProcessEnv): { positionals: string[]; opts: Options; help: boolean } {
  let parsed;
  try {
    parsed = parseCommandLine(
      argv,
      {
        url: { type: 'string' },
        'data-dir': { type: 'string' },
        size: { type: 'string' },
        sha256: { type: 'string' },
        'skip-learn': { type: 'boolean' },
        'keep-archive': { type: 'boolean' },
        force: { type: 'boolean' },
        retries: { type: 'string' },
        'retry-delay': { type: 'string' },
        timeout: { type: 'string' },
        name: { type: 'string' },
        symlink: { type: 'boolean' },
        k: { type: 'string' },
        out: { type: 'string' },
        quiet: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
      Infinity,
    );
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const flags = parsed.values;
  const str = (name: string): string | undefined => stringOption(flags, name);
  const sha256 = str('sha256');
  if (sha256 !== undefined && !/^[0-9a-fA-F]{64}$/.test(sha256)) {
    throw new UsageError(`--sha256 must be 64 hex digits, got ${JSON.stringify(sha256)}`);
  }
  const url = str('url') ?? (env.RABITQ_DATASET_URL || undefined);
  const dataDir = path.resolve(
    str('data-dir') ?? (env.RABITQ_DATA_DIR || path.join(packageRoot(), 'datasets', 'data')),
  );
  return {
    positionals: parsed.positionals,
    help: flags.help === true,
    opts: {
      url,
      dataDir,
      size: str('size') === undefined ? undefined : intFlag('size', str('size'), 0, 1),
      sha256: sha256?.toLowerCase(),
      skipLearn: flags['skip-learn'] === true,
      keepArchive: flags['keep-archive'] === true,
      force: flags.force === true,
      retries: intFlag('retries', str('retries'), 5, 0),
      retryDelayMs: intFlag('retry-delay', str('retry-delay'), 1000, 0),
      timeoutMs: intFlag('timeout', str('timeout'), 60, 1) * 1000,
      name: str('name'),
      symlink: flags.symlink === true,
      k: intFlag('k', str('k'), 100, 1),
      out: str('out'),
      quiet: flags.quiet === true,
    },
  };
}

function checkName(name: string): void {
  if (!NAME_RE.test(name) || COMMANDS.has(name)) {
    throw new UsageError(
      `invalid dataset name ${JSON.stringify(name)}: use letters, digits, '.', '_' or '-' (not ${[...COMMANDS].join('/')})`,
    );
  }
}

function readManifest(dir: string): Manifest | null {
  try {
    return JSON.parse(fs.readFileSync(path.join(dir, MANIFEST), 'utf8')) as Manifest;
  } catch {
    return null;
  }
}

function writeManifest(dir: string, m: Manifest): void {
  const tmp = path.join(dir, `${MANIFEST}.tmp`);
  fs.writeFileSync(tmp, `${JSON.stringify(m, null, 2)}\n`);
  fs.renameSync(tmp, path.join(dir, MANIFEST));
}

/** True when `dir` holds a complete, registered dataset whose files still have their recorded sizes. */
function isInstalled(dir: string, spec: DatasetSpec | null, skipLearn: boolean): boolean {
  const m = readManifest(dir);
  if (!m) return false;
  for (const f of Object.values(m.files)) {
    if (!f || fs.statSync(path.join(dir, f.file), { throwIfNoEntry: false })?.size !== f.bytes) return false;
  }
  if (spec) {
    for (const f of spec.files) {
      if (f.role === 'learn' && skipLearn) continue;
      const got = m.files[f.role];
      if (!got || got.rows !== f.rows || got.dim !== f.dim || got.type !== f.type) return false;
    }
  }
  return m.files.base !== undefined;
}

function fmtBytes(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)} GB`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)} MB`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)} kB`;
  return `${n} B`;
}

/**
 * Validates a set of role -> file: every file fully scanned, shapes consistent,
 * ground-truth ids in range, and (for a known dataset) shapes as published.
 * `badInput` selects the error class: UsageError (user's files) or RabitqError (a download).
 */
async function validateSet(
  files: Partial<Record<Role, string>>,
  spec: DatasetSpec | null,
  required: Role[],
  badInput: boolean,
): Promise<Partial<Record<Role, VectorFileInfo>>> {
  const fail = (msg: string): Error => (badInput ? new UsageError(msg) : new RabitqError('EBADDATASET', msg));
  for (const r of required)
    if (!files[r]) throw fail(`missing the ${r} file (expected a name like ${r}.fvecs or <prefix>_${r}.fvecs)`);
  const info: Partial<Record<Role, VectorFileInfo>> = {};
  for (const role of ROLES) {
    const f = files[role];
    if (!f) continue;
    const type = path.extname(f).slice(1) as VectorFileType;
    try {
      info[role] = await inspectVectorFile(f, type, { scan: true });
    } catch (err) {
      if (err instanceof VectorFileError) throw fail(err.message);
      throw err;
    }
  }
  const { base, query, groundtruth, learn } = info;
  if (spec) {
    for (const want of spec.files) {
      const got = info[want.role];
      if (!got) continue;
      if (got.type !== want.type || got.count !== want.rows || got.dim !== want.dim) {
        throw fail(
          `${files[want.role]}: ${got.count} x ${got.dim} ${got.type}, but ${spec.name} ${want.role} is ${want.rows} x ${want.dim} ${want.type}`,
        );
      }
    }
  }
  if (base && query && query.dim !== base.dim)
    throw fail(`query dimension ${query.dim} differs from base dimension ${base.dim}`);
  if (base && learn && learn.dim !== base.dim)
    throw fail(`learn dimension ${learn.dim} differs from base dimension ${base.dim}`);
  if (query && groundtruth && groundtruth.count !== query.count) {
    throw fail(`groundtruth has ${groundtruth.count} rows but there are ${query.count} queries`);
  }
  if (base && groundtruth) {
    const gt = await readIvecs(files.groundtruth!);
    for (let i = 0; i < gt.data.length; i++) {
      const id = gt.data[i]!;
      if (id < 0 || id >= base.count) {
        const row = Math.floor(i / gt.dim);
        throw fail(
          `${files.groundtruth}: id ${id} at row ${row}, column ${i - row * gt.dim} is not a base row (0..${base.count - 1})`,
        );
      }
    }
  }
  return info;
}

function manifestFor(
  name: string,
  source: string,
  dir: string,
  files: Partial<Record<Role, string>>,
  info: Partial<Record<Role, VectorFileInfo>>,
): Manifest {
  const m: Manifest = { name, source, files: {} };
  for (const role of ROLES) {
    const i = info[role];
    const f = files[role];
    if (!i || !f) continue;
    m.files[role] = {
      file: path.relative(dir, f) || path.basename(f),
      type: i.type,
      rows: i.count,
      dim: i.dim,
      bytes: i.bytes,
    };
  }
  return m;
}

function describeSet(dir: string, info: Partial<Record<Role, VectorFileInfo>>): string {
  const lines = [`${dir}:`];
  for (const role of ROLES) {
    const i = info[role];
    if (i) lines.push(`  ${`${role}.${i.type}`.padEnd(18)} ${String(i.count).padStart(9)} x ${i.dim}`);
  }
  return `${lines.join('\n')}\n`;
}

function progressPrinter(io: CliIo, quiet: boolean): (done: number, total: number | null) => void {
  let last = 0;
  return (done, total) => {
    if (quiet) return;
    const now = Date.now();
    if (now - last < 1000 && done !== total) return;
    last = now;
    io.stderr(`  ${fmtBytes(done)}${total ? ` / ${fmtBytes(total)} (${((100 * done) / total).toFixed(1)}%)` : ''}\n`);
  };
}

// ---------------------------------------------------------------------------

async function fetchCommand(name: string, o: Options, io: CliIo): Promise<number> {
  checkName(name);
  const spec = DATASETS[name] ?? null;
  if (!spec && !o.url) {
    throw new UsageError(
      `unknown dataset ${JSON.stringify(name)}; known: ${Object.keys(DATASETS).join(', ')} (pass --url to fetch another archive)`,
    );
  }
  const url = o.url ?? spec!.url;
  let parsedUrl: URL;
  try {
    parsedUrl = new URL(url);
  } catch {
    throw new UsageError(`--url is not a valid URL: ${JSON.stringify(url)}`);
  }
  if (!['ftp:', 'http:', 'https:'].includes(parsedUrl.protocol)) {
    throw new UsageError(`--url must be ftp://, http:// or https://, got ${JSON.stringify(url)}`);
  }
  const official = spec !== null && url === spec.url;
  const outDir = path.join(o.dataDir, name);
  if (!o.force && isInstalled(outDir, spec, o.skipLearn)) {
    io.stdout(`${name} is already present in ${outDir} (use --force to fetch it again)\n`);
    return 0;
  }
  fs.mkdirSync(outDir, { recursive: true });
  const urlName = path.posix.basename(parsedUrl.pathname);
  const archive = path.join(outDir, /^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(urlName) ? urlName : `${name}.archive`);
  if (o.force) {
    fs.rmSync(archive, { force: true });
    fs.rmSync(`${archive}.part`, { force: true });
    fs.rmSync(path.join(outDir, MANIFEST), { force: true });
  }

  const expectedSize = o.size ?? (official ? spec!.archiveBytes : null);
  const sha256 = o.sha256 ?? (official ? spec!.sha256 : null);
  if (!o.quiet) {
    io.stderr(`fetching ${url}${spec ? ` (${spec.approxArchiveSize})` : ''}\n`);
  }
  const dl = await download({
    url,
    dest: archive,
    expectedSize,
    sha256,
    retries: o.retries,
    retryDelayMs: o.retryDelayMs,
    timeoutMs: o.timeoutMs,
    onProgress: progressPrinter(io, o.quiet),
    log: (m) => {
      if (!o.quiet) io.stderr(`  ${m}\n`);
    },
  });
  if (!o.quiet) {
    io.stderr(
      dl.alreadyPresent
        ? `  archive already downloaded (${fmtBytes(dl.bytes)})\n`
        : `  downloaded ${fmtBytes(dl.bytes)}${dl.resumed ? ' (resumed)' : ''}\n`,
    );
    io.stderr(`unpacking ${archive}\n`);
  }

  const wanted = new Set<Role>(spec ? spec.files.map((f) => f.role) : ROLES);
  if (o.skipLearn) wanted.delete('learn');
  const files: Partial<Record<Role, string>> = {};
  const seen = new Map<Role, string>();
  const extracted = await extractTar(archive, (entry) => {
    const c = classifyFileName(entry.name);
    if (!c || !wanted.has(c.role)) return null;
    const prev = seen.get(c.role);
    if (prev !== undefined)
      throw new RabitqError('EBADDATASET', `${archive}: two ${c.role} files in the archive: ${prev} and ${entry.name}`);
    seen.set(c.role, entry.name);
    const dest = path.join(outDir, `${c.role}.${c.type}`);
    files[c.role] = dest;
    return dest;
  });
  // Only files from this archive count; drop stale files of the same role with another extension.
  for (const role of ROLES) {
    for (const t of ['fvecs', 'ivecs', 'bvecs'] as const) {
      const p = path.join(outDir, `${role}.${t}`);
      if (files[role] !== p && fs.existsSync(p) && wanted.has(role)) fs.rmSync(p);
    }
  }
  if (extracted.length === 0) {
    throw new RabitqError(
      'EBADDATASET',
      `${archive}: no *base/*query/*groundtruth/*learn .fvecs/.ivecs/.bvecs files in the archive`,
    );
  }
  const required: Role[] = spec ? [...wanted] : ['base'];
  const info = await validateSet(files, spec, required, false);
  writeManifest(outDir, manifestFor(name, url, outDir, files, info));
  if (!o.keepArchive) fs.rmSync(archive, { force: true });
  io.stdout(describeSet(outDir, info));
  return 0;
}

async function importCommand(dirArg: string | undefined, o: Options, io: CliIo): Promise<number> {
  if (!dirArg) throw new UsageError('import needs a directory: npm run dataset -- import <dir> [--name <name>]');
  const src = path.resolve(dirArg);
  if (!fs.statSync(src, { throwIfNoEntry: false })?.isDirectory()) throw new UsageError(`not a directory: ${src}`);
  const name = o.name ?? path.basename(src);
  checkName(name);
  const spec = DATASETS[name] ?? null;

  const files: Partial<Record<Role, string>> = {};
  for (const entry of fs.readdirSync(src).sort()) {
    const c = classifyFileName(entry);
    if (!c) continue;
    const p = path.join(src, entry);
    if (!fs.statSync(p).isFile()) continue;
    if (files[c.role])
      throw new UsageError(
        `${src}: more than one ${c.role} file (${path.basename(files[c.role]!)} and ${entry}); keep one`,
      );
    files[c.role] = p;
  }
  if (!files.base)
    throw new UsageError(`${src}: no base file (expected base.fvecs, base.bvecs or <prefix>_base.fvecs)`);
  const info = await validateSet(files, spec, ['base'], true);

  const dest = path.join(o.dataDir, name);
  const same = fs.existsSync(dest) && fs.realpathSync(dest) === fs.realpathSync(src);
  const finalFiles: Partial<Record<Role, string>> = {};
  if (same) {
    Object.assign(finalFiles, files);
  } else {
    if (readManifest(dest) && !o.force)
      throw new UsageError(`dataset ${name} already exists in ${dest} (use --force to replace it, or --name)`);
    fs.mkdirSync(dest, { recursive: true });
    for (const role of ROLES) {
      const f = files[role];
      if (!f) continue;
      const target = path.join(dest, `${role}${path.extname(f)}`);
      for (const t of ['fvecs', 'ivecs', 'bvecs']) fs.rmSync(path.join(dest, `${role}.${t}`), { force: true });
      if (o.symlink) fs.symlinkSync(fs.realpathSync(f), target);
      else fs.copyFileSync(f, target);
      finalFiles[role] = target;
    }
  }
  writeManifest(dest, manifestFor(name, `import:${src}`, dest, finalFiles, info));
  io.stdout(describeSet(dest, info));
  return 0;
}

async function loadExactKnn(deps: CliDeps): Promise<ExactKnn> {
  if (deps.exactKnn) return deps.exactKnn;
  // Resolved at run time so this tool works (and compiles) without the library entry point.
  const spec = new URL('../src/index.js', import.meta.url).href;
  let mod: { exactKnn?: unknown };
  try {
    mod = (await import(spec)) as { exactKnn?: unknown };
  } catch (err) {
    throw new RabitqError(
      'ENOTAVAILABLE',
      `cannot load exactKnn from ${spec} (${(err as Error).message}); build the package first (npm run build)`,
      { cause: err },
    );
  }
  if (typeof mod.exactKnn !== 'function') throw new RabitqError('ENOTAVAILABLE', `${spec} does not export exactKnn`);
  return mod.exactKnn as ExactKnn;
}

async function groundtruthCommand(dirArg: string | undefined, o: Options, io: CliIo, deps: CliDeps): Promise<number> {
  if (!dirArg) throw new UsageError('groundtruth needs a directory: npm run dataset -- groundtruth <dir> [--k 100]');
  let dir = path.resolve(dirArg);
  if (!fs.statSync(dir, { throwIfNoEntry: false })?.isDirectory()) {
    const named = path.join(o.dataDir, dirArg);
    if (NAME_RE.test(dirArg) && fs.statSync(named, { throwIfNoEntry: false })?.isDirectory()) dir = named;
    else throw new UsageError(`not a directory (nor a dataset in ${o.dataDir}): ${dirArg}`);
  }
  const files: Partial<Record<Role, string>> = {};
  for (const entry of fs.readdirSync(dir).sort()) {
    const c = classifyFileName(entry);
    if (!c || (c.role !== 'base' && c.role !== 'query') || c.type === 'ivecs') continue;
    if (files[c.role])
      throw new UsageError(`${dir}: more than one ${c.role} file (${path.basename(files[c.role]!)} and ${entry})`);
    files[c.role] = path.join(dir, entry);
  }
  if (!files.base || !files.query) throw new UsageError(`${dir}: needs a base and a query file (.fvecs or .bvecs)`);
  const out = path.resolve(o.out ?? path.join(dir, 'groundtruth.ivecs'));
  if (fs.existsSync(out) && !o.force) throw new UsageError(`${out} already exists (use --force to overwrite it)`);

  const load = (f: string): Promise<{ dim: number; count: number; data: Float32Array }> =>
    f.endsWith('.bvecs') ? readBvecs(f, { asFloat32: true }) : readFvecs(f);
  let base, query;
  try {
    [base, query] = [await load(files.base), await load(files.query)];
  } catch (err) {
    if (err instanceof VectorFileError) throw new UsageError(err.message);
    throw err;
  }
  if (base.dim !== query.dim)
    throw new UsageError(`query dimension ${query.dim} differs from base dimension ${base.dim}`);
  if (o.k > base.count) throw new UsageError(`--k (${o.k}) must be <= the number of base vectors (${base.count})`);

  const exactKnn = await loadExactKnn(deps);
  if (!o.quiet) io.stderr(`exact ${o.k}-NN of ${query.count} queries over ${base.count} x ${base.dim} base vectors\n`);
  const t0 = Date.now();
  const { ids } = await exactKnn(base.data, query.data, { dim: base.dim, k: o.k });
  if (!(ids instanceof Int32Array) || ids.length !== query.count * o.k) {
    throw new RabitqError(
      'EINTERNAL',
      `exactKnn returned ${ids instanceof Int32Array ? `${ids.length} ids` : 'no Int32Array'}, expected ${query.count * o.k}`,
    );
  }
  await writeIvecs(out, { dim: o.k, data: ids });
  const m = readManifest(dir);
  if (m && path.dirname(out) === dir) {
    m.files.groundtruth = {
      file: path.basename(out),
      type: 'ivecs',
      rows: query.count,
      dim: o.k,
      bytes: fs.statSync(out).size,
    };
    writeManifest(dir, m);
  }
  io.stdout(`wrote ${out}: ${query.count} x ${o.k} (${((Date.now() - t0) / 1000).toFixed(1)} s)\n`);
  return 0;
}

function listCommand(o: Options, io: CliIo): number {
  const rows = [`datasets in ${o.dataDir}:`];
  const names = new Set(Object.keys(DATASETS));
  if (fs.existsSync(o.dataDir))
    for (const d of fs.readdirSync(o.dataDir)) if (readManifest(path.join(o.dataDir, d))) names.add(d);
  for (const n of names) {
    const spec = DATASETS[n] ?? null;
    const installed = isInstalled(path.join(o.dataDir, n), spec, true);
    const sizes = spec
      ? `archive ${spec.approxArchiveSize}, unpacked ${fmtBytes(spec.files.reduce((s, f: FileSpec) => s + fileBytes(f), 0))}`
      : 'custom';
    rows.push(
      `  ${n.padEnd(12)} ${installed ? 'installed    ' : 'not installed'}  ${spec ? spec.description : ''}${spec ? ` (${sizes})` : sizes}`,
    );
  }
  io.stdout(`${rows.join('\n')}\n`);
  return 0;
}

/** Runs the tool; returns the process exit code. Never throws. */
export async function main(
  argv: string[],
  env: NodeJS.ProcessEnv = process.env,
  io?: CliIo,
  deps: CliDeps = {},
): Promise<number> {
  const w: CliIo = io ?? processIo;
  try {
    const { positionals, opts, help } = parse(argv, env);
    const [cmd, ...rest] = positionals;
    if (help || cmd === 'help') {
      w.stdout(USAGE);
      return 0;
    }
    if (!cmd) throw new UsageError('no command given');
    const needs = (n: number): void => {
      if (rest.length > n) throw new UsageError(`unexpected argument ${JSON.stringify(rest[n])}`);
    };
    switch (cmd) {
      case 'list':
        needs(0);
        return listCommand(opts, w);
      case 'import':
        needs(1);
        return await importCommand(rest[0], opts, w);
      case 'groundtruth':
        needs(1);
        return await groundtruthCommand(rest[0], opts, w, deps);
      default:
        needs(0);
        return await fetchCommand(cmd, opts, w);
    }
  } catch (err) {
    if (err instanceof UsageError) {
      w.stderr(`error: ${err.message} (see 'npm run dataset -- --help')\n`);
      return 2;
    }
    if (err instanceof VectorFileError) {
      w.stderr(`error: ${err.message}\n`);
      return 2;
    }
    if (err instanceof RabitqError || err instanceof DownloadError) {
      w.stderr(`error: ${err.message}\n`);
      return 1;
    }
    const e = err as NodeJS.ErrnoException;
    if (typeof e?.code === 'string' && typeof e.syscall === 'string') {
      // file-system problems (permissions, disk full, ...) are reported plainly
      w.stderr(`error: ${e.message}\n`);
      return 1;
    }
    w.stderr(`internal error: ${e?.stack ?? String(err)}\n`);
    return 1;
  }
}

function invokedDirectly(): boolean {
  const script = process.argv[1];
  if (!script) return false;
  try {
    return pathToFileURL(fs.realpathSync(script)).href === import.meta.url;
  } catch {
    return false;
  }
}

if (invokedDirectly()) {
  main(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  });
}
