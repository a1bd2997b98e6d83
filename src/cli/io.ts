/**
 * The one output interface of every command-line entry point (rabitq bench,
 * build, info, serve, the dataset tool, npm start): text goes through it, so
 * tests capture it in memory; the exit code is each command's return value.
 */
export interface CliIo {
  /** Writes `text` (newlines included) to standard output. */
  stdout(text: string): void;
  /** Writes `text` (newlines included) to standard error. */
  stderr(text: string): void;
  /** Whether stderr is an interactive terminal (enables progress bars). */
  isTTY: boolean;
}

/** The process's own stdout / stderr. */
export const processIo: CliIo = {
  stdout: (t) => void process.stdout.write(t),
  stderr: (t) => void process.stderr.write(t),
  isTTY: Boolean(process.stderr.isTTY),
};
