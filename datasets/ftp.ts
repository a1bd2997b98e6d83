/**
 * A minimal passive-mode FTP client: just enough to fetch one file in binary
 * mode from an offset (anonymous login, TYPE I, SIZE, EPSV with PASV
 * fallback, REST, RETR). No active mode, no TLS, no directory listings.
 */
import * as net from 'node:net';
import type { Readable } from 'node:stream';
import { DownloadError, type RemoteBody } from './transfer.js';

interface Reply {
  code: number;
  text: string;
}

/** Reads CRLF-terminated lines from the control connection and groups them into replies. */
class ControlConnection {
  private buffer = '';
  private lines: string[] = [];
  private waiter: { resolve: (line: string) => void; reject: (err: Error) => void } | null = null;
  private failure: Error | null = null;

  constructor(readonly socket: net.Socket, private readonly where: string) {
    socket.setEncoding('latin1');
    socket.on('data', (s: string) => {
      this.buffer += s;
      let i: number;
      while ((i = this.buffer.indexOf('\n')) >= 0) {
        this.lines.push(this.buffer.slice(0, i).replace(/\r$/, ''));
        this.buffer = this.buffer.slice(i + 1);
      }
      this.pump();
    });
    socket.on('error', (err) => this.fail(err));
    socket.on('close', () => this.fail(new DownloadError(`${where}: control connection closed by the server`, true)));
  }

  private fail(err: Error): void {
    if (!this.failure) this.failure = err instanceof DownloadError ? err : new DownloadError(`${this.where}: ${err.message}`, true, { cause: err });
    this.pump();
  }

  private pump(): void {
    if (!this.waiter) return;
    const w = this.waiter;
    if (this.lines.length > 0) {
      this.waiter = null;
      w.resolve(this.lines.shift()!);
    } else if (this.failure) {
      this.waiter = null;
      w.reject(this.failure);
    }
  }

  private line(): Promise<string> {
    return new Promise((resolve, reject) => {
      this.waiter = { resolve, reject };
      this.pump();
    });
  }

  async reply(): Promise<Reply> {
    const first = await this.line();
    const m = /^(\d{3})([ -])(.*)$/.exec(first);
    if (!m) throw new DownloadError(`${this.where}: not an FTP server reply: ${JSON.stringify(first.slice(0, 80))}`, false);
    const code = Number(m[1]);
    let text = m[3]!;
    if (m[2] === '-') {
      for (;;) {
        const l = await this.line();
        if (l.startsWith(`${m[1]} `)) {
          text += `\n${l.slice(4)}`;
          break;
        }
        text += `\n${l}`;
      }
    }
    return { code, text };
  }

  async command(cmd: string): Promise<Reply> {
    this.socket.write(`${cmd}\r\n`);
    return this.reply();
  }
}

function connect(host: string, port: number, timeoutMs: number, what: string): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host, port });
    const onError = (err: Error): void => {
      s.destroy();
      const code = (err as NodeJS.ErrnoException).code;
      reject(new DownloadError(`${what}: cannot connect to ${host}:${port} (${err.message})`, code !== 'ENOTFOUND', { cause: err }));
    };
    s.setTimeout(timeoutMs, () => onError(new Error(`no connection after ${timeoutMs / 1000} s`)));
    s.once('error', onError);
    s.once('connect', () => {
      s.removeListener('error', onError);
      s.setTimeout(0);
      resolve(s);
    });
  });
}

/** 4xx replies are transient, 5xx permanent (RFC 959). */
function unexpected(where: string, cmd: string, r: Reply): DownloadError {
  return new DownloadError(`${where}: ${cmd} failed: ${r.code} ${r.text.split('\n')[0]}`, r.code >= 400 && r.code < 500);
}

/**
 * Opens `url` (ftp://) for reading from byte `offset`. The returned body is the
 * data connection; `finish()` waits for the server's end-of-transfer reply.
 */
export async function openFtp(url: URL, offset: number, timeoutMs: number): Promise<RemoteBody> {
  const where = url.href;
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  const port = url.port ? Number(url.port) : 21;
  const filePath = decodeURIComponent(url.pathname);
  const slash = filePath.lastIndexOf('/');
  const dirName = filePath.slice(0, slash);
  const fileName = filePath.slice(slash + 1);
  if (!fileName) throw new DownloadError(`${where}: the URL does not name a file`, false);

  const socket = await connect(host, port, timeoutMs, where);
  socket.setTimeout(timeoutMs, () => socket.destroy(new Error(`server silent for ${timeoutMs / 1000} s`)));
  const ctl = new ControlConnection(socket, where);
  let data: net.Socket | null = null;
  const closeAll = (): void => {
    data?.destroy();
    if (!socket.destroyed) {
      socket.end('QUIT\r\n');
      socket.destroySoon();
    }
  };
  try {
    let r = await ctl.reply();
    while (r.code === 120) r = await ctl.reply();
    if (r.code !== 220) throw unexpected(where, 'greeting', r);

    r = await ctl.command(`USER ${url.username ? decodeURIComponent(url.username) : 'anonymous'}`);
    if (r.code === 331) r = await ctl.command(`PASS ${url.password ? decodeURIComponent(url.password) : 'anonymous@'}`);
    if (r.code !== 230 && r.code !== 202) throw unexpected(where, 'login', r);

    r = await ctl.command('TYPE I');
    if (r.code !== 200) throw unexpected(where, 'TYPE I', r);

    if (dirName) {
      r = await ctl.command(`CWD ${dirName}`);
      if (r.code !== 250 && r.code !== 200) throw unexpected(where, `CWD ${dirName}`, r);
    }

    let total: number | null = null;
    r = await ctl.command(`SIZE ${fileName}`);
    if (r.code === 213 && /^\d+$/.test(r.text.trim())) total = Number(r.text.trim());
    else if (r.code === 550) throw new DownloadError(`${where}: no such file on the server (${r.code} ${r.text})`, false);

    // Passive data connection: EPSV first, PASV as the fallback. The data
    // connection always goes to the control connection's host (advertised
    // PASV addresses are often private or wrong behind NAT).
    const dataHost = socket.remoteAddress ?? host;
    let dataPort: number | null = null;
    r = await ctl.command('EPSV');
    if (r.code === 229) {
      const m = /\((.)\1\1(\d+)\1\)/.exec(r.text);
      if (m) dataPort = Number(m[2]);
    }
    if (dataPort === null) {
      r = await ctl.command('PASV');
      const m = /(\d+),(\d+),(\d+),(\d+),(\d+),(\d+)/.exec(r.text);
      if (r.code !== 227 || !m) throw unexpected(where, 'PASV', r);
      dataPort = Number(m[5]) * 256 + Number(m[6]);
    }
    data = await connect(dataHost, dataPort, timeoutMs, `${where} (data connection)`);
    data.pause();
    // Errors before the body is consumed must not go unhandled; the consumer sees them via stream.errored.
    data.on('error', () => {});

    let start = 0;
    if (offset > 0) {
      r = await ctl.command(`REST ${offset}`);
      if (r.code === 350) start = offset;
      else if (r.code < 500) throw unexpected(where, `REST ${offset}`, r);
      // 5xx: the server cannot resume; transfer from the beginning.
    }

    r = await ctl.command(`RETR ${fileName}`);
    if (r.code !== 150 && r.code !== 125) {
      if (r.code === 550) throw new DownloadError(`${where}: no such file on the server (${r.code} ${r.text})`, false);
      throw unexpected(where, 'RETR', r);
    }
    // The control connection stays quiet for the whole transfer; watch the data connection instead.
    socket.setTimeout(0);
    const body = data;
    body.setTimeout(timeoutMs, () => body.destroy(new DownloadError(`${where}: no data for ${timeoutMs / 1000} s`, true)));

    return {
      body: body as Readable,
      start,
      total,
      async finish(): Promise<void> {
        socket.setTimeout(timeoutMs, () => socket.destroy(new Error(`no end-of-transfer reply after ${timeoutMs / 1000} s`)));
        const done = await ctl.reply();
        if (done.code !== 226 && done.code !== 250) throw unexpected(where, 'transfer', done);
      },
      close: closeAll,
    };
  } catch (err) {
    closeAll();
    throw err;
  }
}
