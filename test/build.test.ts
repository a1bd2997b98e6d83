/**
 * The build files agree with each other, stay portable, and the published
 * tarball installs (compiling from source) and works in a fresh folder.
 */
import { describe, it, expect } from 'vitest';
import { execFile, spawnSync } from 'node:child_process';
import {
  existsSync,
  readFileSync,
  readdirSync,
  mkdirSync,
  mkdtempSync,
  realpathSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { createRequire } from 'node:module';
import { ensureDist } from './helpers.js';

const run = promisify(execFile);
const here = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(here, '..');
const read = (rel: string): string => readFileSync(path.join(repoRoot, rel), 'utf8');

/** Removes `#` comments that are outside quoted strings (gyp and CMake both use `#`). */
function stripHashComments(text: string): string {
  let out = '';
  let quote: string | null = null;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quote !== null) {
      out += c;
      if (c === '\\' && i + 1 < text.length) out += text[++i];
      else if (c === quote) quote = null;
    } else if (c === '"' || c === "'") {
      quote = c;
      out += c;
    } else if (c === '#') {
      while (i < text.length && text[i] !== '\n') i++;
      out += '\n';
    } else {
      out += c;
    }
  }
  return out;
}

/** binding.gyp is a Python literal; ours is JSON once comments and trailing commas go. */
function parseGyp(text: string): unknown {
  const json = stripHashComments(text).replace(/,(\s*[}\]])/g, '$1');
  return JSON.parse(json);
}

/** Every string in every "sources" array, anywhere in the gyp tree. */
function gypSources(node: unknown, out: Set<string> = new Set()): Set<string> {
  if (Array.isArray(node)) {
    for (const x of node) gypSources(x, out);
  } else if (node !== null && typeof node === 'object') {
    for (const [key, value] of Object.entries(node)) {
      if (key === 'sources' && Array.isArray(value)) {
        for (const s of value) if (typeof s === 'string') out.add(path.posix.normalize(s));
      } else {
        gypSources(value, out);
      }
    }
  }
  return out;
}

/** The files of every `set(RABITQ_..._SOURCES ...)` in CMakeLists.txt, by variable. */
function cmakeSourceLists(text: string): Map<string, string[]> {
  const lists = new Map<string, string[]>();
  const re = /\bset\(\s*(RABITQ_\w*SOURCES)\s+([^)]*)\)/gi;
  for (const m of stripHashComments(text).matchAll(re)) {
    const files = m[2]!
      .split(/\s+/)
      .filter((t) => /\.(cc|cpp|c)$/.test(t))
      .map((t) => path.posix.normalize(t.replace(/^"|"$/g, '')));
    lists.set(m[1]!, files);
  }
  return lists;
}

function nativeSourceFiles(): string[] {
  const out: string[] = [];
  const walk = (rel: string): void => {
    for (const e of readdirSync(path.join(repoRoot, rel), { withFileTypes: true })) {
      const child = `${rel}/${e.name}`;
      if (e.isDirectory()) walk(child);
      else if (/\.(cc|cpp|c)$/.test(e.name)) out.push(child);
    }
  };
  walk('native/core');
  walk('native/binding');
  return out.sort();
}

describe('build files', () => {
  const gyp = parseGyp(read('binding.gyp'));
  const cmakeText = read('CMakeLists.txt');
  const cmakeLists = cmakeSourceLists(cmakeText);
  const cmakeSources = new Set([...cmakeLists.values()].flat());

  it('binding.gyp and CMakeLists.txt compile the same set of native sources', () => {
    const gypSet = gypSources(gyp);
    expect(gypSet.size).toBeGreaterThan(0);
    expect(cmakeSources.size).toBeGreaterThan(0);
    expect([...cmakeSources].sort()).toEqual([...gypSet].sort());
  });

  it('every CMake source list is used by a target', () => {
    const body = stripHashComments(cmakeText).replace(/\bset\(\s*RABITQ_\w*SOURCES\s+[^)]*\)/gi, '');
    for (const name of cmakeLists.keys()) expect(body, name).toContain(`\${${name}}`);
  });

  it('every .cc under native/core and native/binding is built (tests excepted)', () => {
    expect(nativeSourceFiles()).toEqual([...gypSources(gyp)].sort());
  });

  it('no build file tunes for the build machine (-march=native and friends)', () => {
    const files = ['binding.gyp', 'CMakeLists.txt', 'package.json'];
    for (const f of files) {
      const text = f === 'package.json' ? read(f) : stripHashComments(read(f));
      expect(text, f).not.toMatch(/-m(arch|tune|cpu)=native|\/arch:native/);
    }
  });

  it('only the library addon is a *.node in build/<config> (node-gyp-build and prebuildify take the first one there)', () => {
    const targets = (gyp as { targets: Array<Record<string, unknown>> }).targets;
    const testing = targets.find((t) => t.target_name === 'rabitq_testing');
    expect(testing, 'binding.gyp has the test-only addon target').toBeDefined();
    expect(JSON.stringify(testing!.target_conditions)).toContain('"product_extension":"testnode"');
    for (const config of ['Release', 'Debug']) {
      const dir = path.join(repoRoot, 'build', config);
      if (!existsSync(dir)) continue;
      expect(
        readdirSync(dir).filter((f) => /\.node$/i.test(f)),
        dir,
      ).toEqual(['rabitq.node']);
    }
    const nodeGypBuild = createRequire(import.meta.url)('node-gyp-build') as { resolve(dir: string): string };
    if (existsSync(path.join(repoRoot, 'build', 'Release')))
      expect(path.basename(nodeGypBuild.resolve(repoRoot))).toBe('rabitq.node');
  });

  it('package.json ships what an install from source needs', () => {
    const pkg = JSON.parse(read('package.json')) as {
      files: string[];
      scripts: Record<string, string>;
      gypfile?: boolean;
    };
    for (const entry of ['dist/src', 'native', 'binding.gyp']) expect(pkg.files).toContain(entry);
    expect(pkg.scripts.install).toBe('node-gyp-build');
    expect(pkg.gypfile).toBe(true);
  });

  it('npm run build builds the addon and the TypeScript only (no prebuildify pre-hook)', () => {
    const pkg = JSON.parse(read('package.json')) as { scripts: Record<string, string> };
    expect(pkg.scripts.build).toBeDefined();
    expect(pkg.scripts.prebuild, 'a "prebuild" script runs before every npm run build').toBeUndefined();
    expect(pkg.scripts.build).not.toMatch(/prebuildify/);
  });

  it('npm pack ships the library, the CLI and its bench harness, and no repository scripts or results', async () => {
    expect(existsSync(path.join(repoRoot, 'dist', 'src', 'bench', 'runner.js')), 'run npm run build:ts first').toBe(
      true,
    );
    const packed = await run('npm', ['pack', '--dry-run', '--ignore-scripts', '--json'], {
      cwd: repoRoot,
      maxBuffer: 64 << 20,
    });
    const files = (JSON.parse(packed.stdout) as Array<{ files: Array<{ path: string }> }>)[0]!.files.map((f) => f.path);
    for (const f of [
      'dist/src/index.js',
      'dist/src/server/index.js',
      'dist/src/cli/main.js',
      'dist/src/cli/options.js',
      'dist/src/bench/runner.js',
      'dist/src/bench/peers/hnswlib.js',
      'dist/src/bench/peers/js_ivfflat.js',
      'dist/src/bench/faiss.js',
      'src/bench/peers/faiss_peer.py',
    ]) {
      expect(files, `tarball lacks ${f}`).toContain(f);
    }
    for (const f of files) {
      expect(f, 'no repository scripts, results, datasets or tests').not.toMatch(/^(dist\/)?(bench|datasets|test)\//);
      expect(f, 'TypeScript sources are not shipped (only the compiled dist/src)').not.toMatch(/^src\/.*\.ts$/);
    }
  });
});

describe('npm pack + install from the tarball', () => {
  // Compiles the addon from source in a fresh folder: slow on two cores.
  it('installs, compiles from source, and runs simdLevel() and exactKnn()', { timeout: 600_000 }, async () => {
    const distIndex = path.join(repoRoot, 'dist', 'src', 'index.js');
    ensureDist(distIndex); // packs dist/ as it is: build it here rather than rely on an earlier test file
    expect(existsSync(distIndex), `${distIndex} is missing: run npm run build:ts first`).toBe(true);
    const tmp = mkdtempSync(path.join(os.tmpdir(), 'rabitq-pack-'));
    let ok = false;
    try {
      // --ignore-scripts: pack the dist/ already built rather than re-running tsc here.
      const packed = await run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', tmp], {
        cwd: repoRoot,
        maxBuffer: 64 << 20,
      });
      const info = JSON.parse(packed.stdout) as Array<{ filename: string; files: Array<{ path: string }> }>;
      const tgz = path.join(tmp, path.basename(info[0]!.filename));
      const files = info[0]!.files.map((f) => f.path);
      for (const f of [
        'package.json',
        'binding.gyp',
        'dist/src/index.js',
        'dist/src/native.js',
        'native/binding/addon.cc',
        'native/core/kernels/kernels.h',
        'native/core/persist/reader.cc',
        'dist/src/cli/main.js',
        'dist/src/bench/progress.js',
        'dist/src/bench/runner.js',
        'src/bench/peers/faiss_peer.py',
        'docs/FORMAT.md',
      ]) {
        expect(files, `tarball lacks ${f}`).toContain(f);
      }
      for (const f of files)
        expect(f, 'no build output or tests in the tarball').not.toMatch(/^(build|build-[^/]*|test|node_modules)\//);

      const app = path.join(tmp, 'app');
      await run('mkdir', ['-p', app]);
      writeFileSync(
        path.join(app, 'package.json'),
        JSON.stringify({ name: 'rabitq-pack-check', version: '1.0.0', private: true }),
      );
      // Force the compile even if the tarball carries a matching prebuild.
      const env = { ...process.env, npm_config_build_from_source: 'true', JOBS: '2' };
      await run('npm', ['install', tgz, '--no-audit', '--no-fund'], {
        cwd: app,
        env,
        maxBuffer: 64 << 20,
        timeout: 540_000,
      });
      const pkgDir = path.join(app, 'node_modules', 'rabitq');
      expect(
        existsSync(path.join(pkgDir, 'build', 'Release', 'rabitq.node')),
        'addon compiled in the installed package',
      ).toBe(true);

      const script = [
        "const m = await import('rabitq');",
        'const base = new Float32Array([0, 0, 1, 0, 0, 1, 1, 1, 5, 5]);',
        'const queries = new Float32Array([0.9, 0.2, 4, 4]);',
        'const r = await m.exactKnn(base, queries, { dim: 2, k: 2 });',
        'console.log(JSON.stringify({ level: m.simdLevel(), ids: Array.from(r.ids), d: Array.from(r.distances) }));',
      ].join('\n');
      const res = await run(process.execPath, ['--input-type=module', '-e', script], { cwd: app, timeout: 60_000 });
      const out = JSON.parse(res.stdout.trim()) as { level: string; ids: number[]; d: number[] };
      expect(['scalar', 'avx2', 'avx512', 'neon']).toContain(out.level);
      expect(out.ids).toEqual([1, 3, 4, 3]);
      expect(out.d[0]).toBeCloseTo(0.05, 5);
      expect(out.d[2]).toBeCloseTo(2, 5);

      // The CLI of the installed package: build an index file, then load it.
      const script2 = [
        "const m = await import('rabitq');",
        'const data = new Float32Array(400 * 8).map((_, i) => Math.sin(i * 0.37));',
        "await m.writeFvecs('v.fvecs', { dim: 8, data });",
      ].join('\n');
      await run(process.execPath, ['--input-type=module', '-e', script2], { cwd: app, timeout: 60_000 });
      const cli = path.join(pkgDir, 'dist', 'src', 'cli', 'main.js');
      const built = await run(
        process.execPath,
        [cli, 'build', 'v.fvecs', '--out', 'v.rbq', '--clusters', '4', '--no-progress'],
        { cwd: app, timeout: 60_000 },
      );
      expect(built.stdout).toMatch(/400 vectors x 8, 4 clusters/);
      const loaded = await run(
        process.execPath,
        [
          '--input-type=module',
          '-e',
          "const m = await import('rabitq'); const i = await m.IvfRabitqIndex.load('v.rbq', { mmap: true }); console.log(i.size, i.numClusters);",
        ],
        { cwd: app, timeout: 60_000 },
      );
      expect(loaded.stdout.trim()).toBe('400 4');
      ok = true;
    } finally {
      if (ok) rmSync(tmp, { recursive: true, force: true });
      else console.error(`pack/install test failed; files kept in ${tmp}`);
    }
  });
});

/** True when a 64-bit little-endian ELF file still has a .symtab section (not stripped). */
function hasSymtab(buf: Buffer): boolean {
  const shoff = Number(buf.readBigUInt64LE(40));
  const shentsize = buf.readUInt16LE(58);
  const shnum = buf.readUInt16LE(60);
  const shstrndx = buf.readUInt16LE(62);
  const strOff = Number(buf.readBigUInt64LE(shoff + shstrndx * shentsize + 24));
  for (let i = 0; i < shnum; i++) {
    const nameOff = buf.readUInt32LE(shoff + i * shentsize);
    const end = buf.indexOf(0, strOff + nameOff);
    if (buf.toString('latin1', strOff + nameOff, end) === '.symtab') return true;
  }
  return false;
}

const PREBUILDS = ['linux-x64', 'linux-arm64'];
const ELF_MACHINE: Record<string, number> = { 'linux-x64': 62, 'linux-arm64': 183 };
const havePrebuilds = PREBUILDS.every((p) => existsSync(path.join(repoRoot, 'prebuilds', p, 'rabitq.node')));

describe('npm pack + install with the prebuilds, no compiler', () => {
  // CI builds the prebuilds first (npm run prebuild:linux) and sets
  // RABITQ_REQUIRE_PREBUILDS=1; a developer checkout without them skips.
  const required = process.env.RABITQ_REQUIRE_PREBUILDS === '1';
  it.skipIf(!havePrebuilds && !required)(
    'the tarball holds stripped linux-x64 and linux-arm64 prebuilds, stays under 10 MB, and installs with no compiler, make or python',
    { timeout: 300_000 },
    async () => {
      expect(havePrebuilds, 'prebuilds/linux-{x64,arm64}/rabitq.node missing: run npm run prebuild:linux').toBe(true);
      const tmp = mkdtempSync(path.join(os.tmpdir(), 'rabitq-prebuilt-'));
      let ok = false;
      try {
        const packed = await run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', tmp], {
          cwd: repoRoot,
          maxBuffer: 64 << 20,
        });
        const info = JSON.parse(packed.stdout) as Array<{
          filename: string;
          size: number;
          files: Array<{ path: string; size: number }>;
        }>;
        const tgz = path.join(tmp, path.basename(info[0]!.filename));
        expect(info[0]!.size, 'tarball bytes').toBeLessThan(10 << 20);
        const files = new Map(info[0]!.files.map((f) => [f.path, f.size]));
        for (const p of PREBUILDS) {
          const rel = `prebuilds/${p}/rabitq.node`;
          expect(files.has(rel), `tarball lacks ${rel}`).toBe(true);
          const bytes = readFileSync(path.join(repoRoot, rel));
          expect(bytes.readUInt16LE(18), `${rel} is built for the wrong CPU`).toBe(ELF_MACHINE[p]);
          expect(hasSymtab(bytes), `${rel} is not stripped`).toBe(false);
        }

        // PATH holds node, npm and sh (npm runs install scripts with it) only: no g++, cc, make or python3.
        const bin = path.join(tmp, 'bin');
        mkdirSync(bin);
        symlinkSync(process.execPath, path.join(bin, 'node'));
        symlinkSync('/bin/sh', path.join(bin, 'sh'));
        const npmOnPath = spawnSync('/bin/sh', ['-c', 'command -v npm'], { encoding: 'utf8' }).stdout.trim();
        const npmCli = realpathSync(npmOnPath);
        writeFileSync(path.join(bin, 'npm'), `#!/bin/sh\nexec "${process.execPath}" "${npmCli}" "$@"\n`, {
          mode: 0o755,
        });
        const env: NodeJS.ProcessEnv = {
          HOME: process.env.HOME,
          PATH: bin,
          CC: 'false',
          CXX: 'false',
          npm_config_update_notifier: 'false',
        };
        for (const tool of ['g++', 'c++', 'make', 'python3']) {
          const which = spawnSync('/bin/sh', ['-c', `command -v ${tool}`], { env });
          expect(which.status, `${tool} should not be on the test PATH`).not.toBe(0);
        }
        const app = path.join(tmp, 'app');
        mkdirSync(app);
        writeFileSync(
          path.join(app, 'package.json'),
          JSON.stringify({ name: 'rabitq-prebuilt-check', version: '1.0.0', private: true }),
        );
        await run(path.join(bin, 'npm'), ['install', tgz, '--no-audit', '--no-fund'], {
          cwd: app,
          env,
          maxBuffer: 64 << 20,
          timeout: 240_000,
        });
        const pkgDir = path.join(app, 'node_modules', 'rabitq');
        expect(existsSync(path.join(pkgDir, 'build')), 'nothing was compiled').toBe(false);

        const script = [
          "import { createRequire } from 'node:module';",
          "const m = await import('rabitq');",
          'const require = createRequire(import.meta.url);',
          "const where = require('node-gyp-build').resolve(new URL('./node_modules/rabitq/', import.meta.url).pathname);",
          'const r = await m.exactKnn(new Float32Array([0, 0, 3, 4]), new Float32Array([3, 3.9]), { dim: 2, k: 1 });',
          'console.log(JSON.stringify({ level: m.simdLevel(), where, id: r.ids[0] }));',
        ].join('\n');
        const res = await run(process.execPath, ['--input-type=module', '-e', script], {
          cwd: app,
          env,
          timeout: 60_000,
        });
        const out = JSON.parse(res.stdout.trim()) as { level: string; where: string; id: number };
        expect(out.where).toBe(path.join(pkgDir, 'prebuilds', `${process.platform}-${process.arch}`, 'rabitq.node'));
        expect(['scalar', 'avx2', 'avx512', 'neon']).toContain(out.level);
        expect(out.id).toBe(1);
        ok = true;
      } finally {
        if (ok) rmSync(tmp, { recursive: true, force: true });
        else console.error(`prebuilt install test failed; files kept in ${tmp}`);
      }
    },
  );
});
