/**
 * Loading the addon: a prebuild for another platform, a damaged .node file or
 * no matching build at all must fail `import 'rabitq'` with an error naming
 * the file, the platform expected and how to build from source, never a bare
 * dlopen message.
 */
import { describe, it, expect, afterAll } from 'vitest';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { loadAddonFrom, native } from '../src/native.js';
import { RabitqError } from '../src/errors.js';

const require_ = createRequire(import.meta.url);
const tmp = mkdtempSync(path.join(os.tmpdir(), 'rabitq-load-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** A package folder holding one file as its prebuild for this platform. */
function fakePackage(name: string, bytes: Buffer | null): { dir: string; file: string } {
  const dir = path.join(tmp, name);
  const pre = path.join(dir, 'prebuilds', `${process.platform}-${process.arch}`);
  mkdirSync(pre, { recursive: true });
  writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: 'rabitq-load-check' }));
  const file = path.join(pre, 'rabitq.node');
  if (bytes !== null) writeFileSync(file, bytes);
  return { dir, file };
}

function loadError(dir: string): RabitqError {
  try {
    loadAddonFrom(dir);
  } catch (err) {
    return err as RabitqError;
  }
  throw new Error(`loading from ${dir} should have failed`);
}

const platformText = `${process.platform}-${process.arch}`;

/** The path node-gyp-build resolved for the addon in use. */
function currentAddonFile(): string {
  const resolve = (require_('node-gyp-build') as { resolve(dir: string): string }).resolve;
  return resolve(path.resolve(import.meta.dirname, '..'));
}

describe('addon loading errors', () => {
  it('the addon in use loads (sanity)', () => {
    expect(typeof native.simdLevel()).toBe('string');
  });

  it('a corrupted .node (not a shared object) names the file, the platform and the source build', () => {
    const { dir, file } = fakePackage('garbage', Buffer.from('this is not a shared object\n'.repeat(40)));
    const err = loadError(dir);
    expect(err).toBeInstanceOf(RabitqError);
    expect(err.code).toBe('EADDONLOAD');
    expect(err.message).toContain(file);
    expect(err.message).toContain(`expected a build for ${platformText}`);
    expect(err.message).toMatch(/build it from source/);
    expect(err.message).toMatch(/--build-from-source/);
    expect((err.cause as { code?: string }).code).toBe('ERR_DLOPEN_FAILED');
  });

  it.each([64, 4096, 0.5, 0.97])(
    'a copy of the real addon truncated to %s (bytes or fraction) fails cleanly, no SIGBUS',
    (cut) => {
      const real = readFileSync(currentAddonFile());
      const n = cut < 1 ? Math.floor(real.length * cut) : cut;
      const { dir, file } = fakePackage(`truncated-${n}`, real.subarray(0, n));
      const err = loadError(dir);
      expect(err.code).toBe('EADDONLOAD');
      expect(err.message).toContain(file);
      expect(err.message).toContain(platformText);
    },
  );

  it('a build for another CPU architecture (ELF e_machine patched) names the file and the platform', () => {
    const real = Buffer.from(readFileSync(currentAddonFile()));
    if (real.subarray(0, 4).toString('latin1') !== '\x7fELF') return; // ELF platforms only
    // e_machine at offset 18: 62 is x86-64, 183 is AArch64; claim the other one.
    real.writeUInt16LE(real.readUInt16LE(18) === 62 ? 183 : 62, 18);
    const { dir, file } = fakePackage('wrong-arch', real);
    const err = loadError(dir);
    expect(err.code).toBe('EADDONLOAD');
    expect(err.message).toContain(file);
    expect(err.message).toContain(platformText);
  });

  it('only prebuilds for other platforms: says no build matches, and how to build', () => {
    const dir = path.join(tmp, 'other-platform');
    const other = process.arch === 'arm64' ? 'x64' : 'arm64';
    mkdirSync(path.join(dir, 'prebuilds', `${process.platform}-${other}`), { recursive: true });
    writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: 'rabitq-load-check' }));
    copyFileSync(currentAddonFile(), path.join(dir, 'prebuilds', `${process.platform}-${other}`, 'rabitq.node'));
    const err = loadError(dir);
    expect(err.code).toBe('EADDONLOAD');
    expect(err.message).toContain(`no native addon under ${dir} matches this platform`);
    expect(err.message).toContain(platformText);
    expect(err.message).toMatch(/npx node-gyp rebuild/);
  });
});
