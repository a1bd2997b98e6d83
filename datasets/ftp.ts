/**
 * ftp:// transport for the downloader, on top of basic-ftp: anonymous (or
 * URL-given) login, binary mode, SIZE, passive data connection (EPSV, then
 * PASV to the control connection's host), REST + RETR from an offset.
 */
import { once } from 'node:events';
import { PassThrough, Writable } from 'node:stream';
import { Client, FTPError } from 'basic-ftp';
import { DownloadError, type RemoteBody } from './transfer.js';

/** 4xx replies are transient, 5xx permanent (RFC 959); socket problems are transient unless the host is unknown. */
function toDownloadError(where: string, what: string, err: unknown): DownloadError {
  if (err instanceof DownloadError) return err;
  if (err instanceof FTPError) {
    const first = err.message.split('\n')[0];
    if (err.code === 550)
      return new DownloadError(`${where}: no such file on the server (${first})`, false, { cause: err });
    return new DownloadError(`${where}: ${what} failed: ${first}`, err.code >= 400 && err.code < 500, { cause: err });
  }
  const e = err as NodeJS.ErrnoException;
  return new DownloadError(`${where}: ${what} failed: ${e.message}`, e.code !== 'ENOTFOUND', { cause: err });
}

/** Replies that mean "REST is not understood here" rather than "the file cannot be sent". */
const isRestRejection = (err: unknown): boolean => err instanceof FTPError && err.code >= 500 && err.code <= 504;

interface Transfer {
  /** the file's bytes, as they arrive */
  body: PassThrough;
  /** resolves (never rejects) once the server has answered the transfer: null on success, else the error */
  settled: Promise<unknown>;
  /** the error, when the transfer failed before any data arrived */
  failure: unknown;
}

/** Starts RETR (after REST when `from` > 0) and waits for the first data or the transfer's end. */
async function startTransfer(client: Client, fileName: string, from: number): Promise<Transfer> {
  const body = new PassThrough({ highWaterMark: 1 << 20 });
  // basic-ftp pipes the data connection into `sink` and destroys that pipe when
  // the transfer fails (e.g. a 426 after a dropped connection). Every byte
  // already received must still reach the disk, so the next attempt resumes
  // after it: the sink only forwards to `body`, which is ended, never
  // destroyed, once the server has answered.
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      if (body.writableEnded || body.write(chunk)) done();
      else body.once('drain', () => done());
    },
    final(done) {
      done();
    },
    destroy(_err, done) {
      done(null);
    },
  });
  let failure: unknown = null;
  const settled = client.downloadTo(sink, fileName, from).then(
    () => null,
    (err: unknown) => (failure = err),
  );
  void settled.then(() => body.end());
  await Promise.race([settled, once(body, 'readable')]);
  // An empty body that was already ended: the transfer is over, so wait for its outcome.
  if (body.readableLength === 0 && body.writableEnded) await settled;
  return { body, settled, failure };
}

/**
 * Opens `url` (ftp://) for reading from byte `offset`. `finish()` resolves once
 * the server confirms the end of the transfer.
 */
export async function openFtp(url: URL, offset: number, timeoutMs: number): Promise<RemoteBody> {
  const where = url.href;
  const filePath = decodeURIComponent(url.pathname);
  const slash = filePath.lastIndexOf('/');
  const dirName = filePath.slice(0, slash);
  const fileName = filePath.slice(slash + 1);
  if (!fileName) throw new DownloadError(`${where}: the URL does not name a file`, false);

  const client = new Client(timeoutMs);
  let step = 'connect';
  try {
    await client.access({
      host: url.hostname.replace(/^\[(.*)\]$/, '$1'),
      port: url.port ? Number(url.port) : 21,
      user: url.username ? decodeURIComponent(url.username) : 'anonymous',
      password: url.password ? decodeURIComponent(url.password) : 'anonymous@',
    });
    if (dirName) {
      step = `CWD ${dirName}`;
      await client.cd(dirName);
    }
    step = `SIZE ${fileName}`;
    let total: number | null = null;
    try {
      total = await client.size(fileName);
    } catch (err) {
      // 550: no such file; anything else (SIZE not supported, odd reply): size unknown
      if (err instanceof FTPError && err.code === 550) throw err;
      if (!(err instanceof FTPError) && client.closed) throw err;
    }

    step = 'RETR';
    let start = offset;
    let t = await startTransfer(client, fileName, start);
    if (t.failure !== null && start > 0 && isRestRejection(t.failure) && !client.closed) {
      // The server rejects REST, so it cannot resume: transfer from the beginning.
      start = 0;
      t = await startTransfer(client, fileName, 0);
    }
    if (t.failure !== null && t.body.readableLength === 0) throw t.failure;
    const { body, settled } = t;
    return {
      body,
      start,
      total,
      async finish(): Promise<void> {
        const failure = await settled;
        if (failure !== null) throw toDownloadError(where, 'transfer', failure);
      },
      close: () => client.close(),
    };
  } catch (err) {
    client.close();
    throw toDownloadError(where, step, err);
  }
}
