/**
 * An error caused by bad user input (missing files, inconsistent dataset,
 * out-of-range options). The CLI prints its message on one line and exits 2.
 */
export class InputError extends Error {
  readonly exitCode = 2;
  constructor(message: string) {
    super(message);
    this.name = 'InputError';
  }
}

/** True for errors that should be reported as "bad input" (exit code 2). */
export function isInputError(err: unknown): err is Error & { exitCode: 2 } {
  return err instanceof Error && (err as { exitCode?: unknown }).exitCode === 2;
}

/** First line of an error's message, for one-line reports. */
export function errorLine(err: unknown): string {
  const msg = err instanceof Error ? err.message : String(err);
  const line = msg.split('\n').find((l) => l.trim() !== '') ?? msg;
  return line.trim();
}
