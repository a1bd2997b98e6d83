/**
 * Resumable download of one file over ftp:// or http(s)://.
 *
 * Data goes to `<dest>.part`; an interrupted run (or a dropped connection)
 * continues from the bytes already on disk, using FTP REST or an HTTP Range
 * request. The finished file is checked against the size the server
 * announced, the expected size and SHA-256 when given, and only then renamed
 * to `dest`.
 */
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import { PassThrough } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { openFtp } from './ftp.js';
import { DownloadError, type RemoteBody } from './transfer.js';

export { DownloadError } from './transfer.js';

export interface DownloadOptions {
  url: string;
  dest: string;
  /** exact size in bytes, when known */
  expectedSize?: number | null;
  /** lowercase hex SHA-256, when known */
  sha256?: string | null;
  /** retries after a failed attempt that made no progress (default 5) */
  retries?: number;
  /** first retry delay, doubled each time up to 30 s (default 1000) */
  retryDelayMs?: number;
  /** idle timeout for connections (default 60 s) */
  timeoutMs?: number;
  onProgress?: (bytes: number, total: number | null) => void;
  log?: (message: string) => void;
}

export interface DownloadResult {
  bytes: number;
  /** a previous partial file or an interrupted attempt was continued */
  resumed: boolean;
  /** connection attempts made */
  attempts: number;
  /** dest already held the complete file */
  alreadyPresent: boolean;
}

function sizeOf(p: string): number | null {
  try {
    return fs.statSync(p).size;
  } catch {
    return null;
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export async function sha256File(p: string): Promise<string> {
  const h = createHash('sha256');
  await pipeline(fs.createReadStream(p), async (src: AsyncIterable<Buffer>) => {
    for await (const chunk of src) h.update(chunk);
  });
  return h.digest('hex');
}

function openHttp(url: URL, offset: number, timeoutMs: number, redirects = 0): Promise<RemoteBody> {
  const where = url.href;
  return new Promise((resolve, reject) => {
    const get = url.protocol === 'https:' ? https.get : http.get;
    const headers: Record<string, string> = { 'user-agent': 'rabitq-dataset-tool', 'accept-encoding': 'identity' };
    if (offset > 0) headers.range = `bytes=${offset}-`;
    const req = get(url, { headers });
    req.setTimeout(timeoutMs, () =>
      req.destroy(new DownloadError(`${where}: no data for ${timeoutMs / 1000} s`, true)),
    );
    req.on('error', (err) => {
      if (err instanceof DownloadError) return reject(err);
      const code = (err as NodeJS.ErrnoException).code;
      reject(new DownloadError(`${where}: ${err.message}`, code !== 'ENOTFOUND', { cause: err }));
    });
    req.on('response', (res) => {
      const status = res.statusCode ?? 0;
      const base: Omit<RemoteBody, 'start' | 'total'> = {
        body: res,
        finish: async () => {},
        close: () => req.destroy(),
      };
      if (status >= 300 && status < 400 && res.headers.location) {
        res.resume();
        if (redirects >= 5) return reject(new DownloadError(`${where}: too many redirects`, false));
        const next = new URL(res.headers.location, url);
        if (next.protocol !== 'http:' && next.protocol !== 'https:') {
          return reject(new DownloadError(`${where}: redirect to unsupported URL ${next.href}`, false));
        }
        return resolve(openHttp(next, offset, timeoutMs, redirects + 1));
      }
      const len = res.headers['content-length'];
      if (status === 200) {
        // A full response: either no range was asked for, or the server ignores ranges.
        return resolve({ ...base, start: 0, total: len !== undefined ? Number(len) : null });
      }
      if (status === 206) {
        const m = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(String(res.headers['content-range'] ?? ''));
        if (!m || Number(m[1]) !== offset) {
          res.resume();
          return reject(
            new DownloadError(
              `${where}: unusable Content-Range ${JSON.stringify(res.headers['content-range'])} for a request from byte ${offset}`,
              false,
            ),
          );
        }
        return resolve({ ...base, start: offset, total: m[3] === '*' ? null : Number(m[3]) });
      }
      res.resume();
      if (status === 416) {
        // Range not satisfiable: the part file may already be complete, or be longer than the file.
        const m = /^bytes \*\/(\d+)$/.exec(String(res.headers['content-range'] ?? ''));
        if (m && Number(m[1]) === offset) {
          const empty = new PassThrough();
          empty.end();
          return resolve({ body: empty, start: offset, total: offset, finish: async () => {}, close: () => {} });
        }
        return resolve(openHttp(url, 0, timeoutMs, redirects));
      }
      const transient = status >= 500 || status === 408 || status === 429;
      reject(new DownloadError(`${where}: HTTP ${status} ${res.statusMessage ?? ''}`.trim(), transient));
    });
  });
}

function openRemote(url: URL, offset: number, timeoutMs: number): Promise<RemoteBody> {
  if (url.protocol === 'ftp:') return openFtp(url, offset, timeoutMs);
  if (url.protocol === 'http:' || url.protocol === 'https:') return openHttp(url, offset, timeoutMs);
  throw new DownloadError(
    `${url.href}: unsupported URL scheme ${url.protocol} (use ftp://, http:// or https://)`,
    false,
  );
}

/** Downloads `url` to `dest`, resuming from `dest + '.part'` when present. */
export async function download(opts: DownloadOptions): Promise<DownloadResult> {
  const { dest, expectedSize = null, retries = 5, retryDelayMs = 1000, timeoutMs = 60_000 } = opts;
  const log = opts.log ?? (() => {});
  const sha256 = opts.sha256 ? opts.sha256.toLowerCase() : null;
  let url: URL;
  try {
    url = new URL(opts.url);
  } catch {
    throw new DownloadError(`not a valid URL: ${JSON.stringify(opts.url)}`, false);
  }
  const part = `${dest}.part`;

  const existing = sizeOf(dest);
  if (existing !== null) {
    if (
      (expectedSize === null || existing === expectedSize) &&
      (sha256 === null || (await sha256File(dest)) === sha256)
    ) {
      return { bytes: existing, resumed: false, attempts: 0, alreadyPresent: true };
    }
    log(`${dest} does not match the expected size/checksum; downloading it again`);
    fs.rmSync(dest, { force: true });
  }

  let total: number | null = expectedSize;
  let attempts = 0;
  let failures = 0;
  let resumed = false;
  for (;;) {
    let offset = sizeOf(part) ?? 0;
    if (total !== null && offset > total) {
      log(`${part} is larger than the file (${offset} > ${total} bytes); starting over`);
      fs.truncateSync(part, 0);
      offset = 0;
    }
    if (total !== null && offset === total && offset > 0) break;
    attempts++;
    let remote: RemoteBody | null = null;
    try {
      remote = await openRemote(url, offset, timeoutMs);
      if (remote.total !== null) {
        if (expectedSize !== null && remote.total !== expectedSize) {
          throw new DownloadError(
            `${url.href}: the server reports ${remote.total} bytes, expected ${expectedSize}`,
            false,
          );
        }
        total = remote.total;
      }
      if (offset > 0) {
        if (remote.start === offset) {
          resumed = true;
          log(`resuming at byte ${offset}${total !== null ? ` of ${total}` : ''}`);
        } else {
          log(`the server cannot resume; downloading from the beginning`);
        }
      }
      // Copy by hand rather than with pipeline(): when the connection drops, every
      // byte already received must still reach the disk, so the next attempt resumes after it.
      let done = remote.start;
      const out = fs.createWriteStream(part, { flags: remote.start === 0 ? 'w' : 'a' });
      let writeErr: unknown = null;
      out.on('error', (e) => {
        writeErr ??= e;
      });
      let bodyErr: unknown = null;
      try {
        for await (const chunk of remote.body as AsyncIterable<Buffer>) {
          done += chunk.length;
          opts.onProgress?.(done, total);
          if (!out.write(chunk)) await once(out, 'drain');
        }
      } catch (e) {
        bodyErr = e;
      }
      out.end();
      if (!out.closed)
        await once(out, 'close').catch((e: unknown) => {
          writeErr ??= e;
        });
      if (writeErr)
        throw new DownloadError(`${part}: cannot write (${(writeErr as Error).message})`, false, { cause: writeErr });
      if (bodyErr) throw bodyErr;
      const got = sizeOf(part) ?? 0;
      try {
        await remote.finish();
      } catch (err) {
        // A lost control connection after a complete transfer is harmless.
        if (total === null || got !== total) throw err;
        log(`ignoring an error after a complete transfer: ${(err as Error).message}`);
      }
      if (total !== null && got < total)
        throw new DownloadError(`${url.href}: transfer ended early at byte ${got} of ${total}`, true);
      if (total !== null && got > total) {
        fs.rmSync(part, { force: true });
        throw new DownloadError(`${url.href}: received ${got} bytes, more than the ${total} announced`, false);
      }
      remote.close();
      break;
    } catch (err) {
      remote?.close();
      const e =
        err instanceof DownloadError
          ? err
          : new DownloadError(`${url.href}: ${(err as Error).message}`, true, { cause: err });
      if (!e.retryable) throw e;
      const progressed = (sizeOf(part) ?? 0) > offset;
      if (progressed) failures = 0;
      else failures++;
      if (failures > retries)
        throw new DownloadError(`${e.message} (gave up after ${attempts} attempts; run again to resume)`, true, {
          cause: e,
        });
      const delay = Math.min(retryDelayMs * 2 ** Math.max(0, failures - 1), 30_000);
      log(`${e.message}; retrying in ${(delay / 1000).toFixed(1)} s`);
      await sleep(delay);
    }
  }

  const bytes = sizeOf(part) ?? 0;
  if (expectedSize !== null && bytes !== expectedSize) {
    throw new DownloadError(`${part}: ${bytes} bytes, expected ${expectedSize}`, false);
  }
  if (sha256 !== null) {
    const got = await sha256File(part);
    if (got !== sha256) {
      fs.rmSync(part, { force: true });
      throw new DownloadError(
        `${url.href}: SHA-256 mismatch (got ${got}, expected ${sha256}); the file was deleted`,
        false,
      );
    }
  }
  fs.renameSync(part, dest);
  return { bytes, resumed, attempts, alreadyPresent: false };
}
