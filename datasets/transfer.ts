/** Types shared by the download transports. */
import type { Readable } from 'node:stream';
import { RabitqError } from '../src/errors.js';

/** A download failed. `retryable` is true for transient problems (network, 4xx FTP replies, HTTP 5xx). */
export class DownloadError extends RabitqError {
  readonly retryable: boolean;

  constructor(message: string, retryable: boolean, options?: ErrorOptions) {
    super('EDOWNLOAD', message, options);
    this.retryable = retryable;
  }
}

/** An open remote file, positioned at `start`. */
export interface RemoteBody {
  body: Readable;
  /** byte offset the body starts at: the requested offset, or 0 if the server cannot resume */
  start: number;
  /** full size of the remote file, when the server said */
  total: number | null;
  /** resolves once the server confirms the transfer is complete */
  finish(): Promise<void>;
  close(): void;
}
