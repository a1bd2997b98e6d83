/**
 * Command-line options for every rabitq CLI, on node:util parseArgs: one
 * style everywhere. Bad usage is a UsageError: one line on stderr, exit 2.
 */
import { parseArgs } from 'node:util';

/** Bad command-line usage: reported on one line, exit code 2. */
export class UsageError extends Error {
  readonly exitCode = 2;
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export interface OptionSpec {
  type: 'string' | 'boolean';
  short?: string;
}

export type ParsedValues = Record<string, string | boolean | undefined>;

/**
 * Parses `argv` with node:util parseArgs against `spec`, strictly:
 * --name value, --name=value, -s value and --flag; a boolean also takes
 * --no-flag (sets it false). Unknown options, a repeated option, a missing
 * value, a value on a boolean and more than `maxPositionals` positional
 * arguments throw UsageError.
 */
export function parseCommandLine(
  argv: readonly string[],
  spec: Record<string, OptionSpec>,
  maxPositionals = 0,
): { values: ParsedValues; positionals: string[] } {
  // strict: false only so the checks below can word the errors; every
  // token is checked against `spec` here.
  const { tokens } = parseArgs({ args: [...argv], options: spec, strict: false, allowPositionals: true, tokens: true });
  const values: ParsedValues = {};
  const positionals: string[] = [];
  for (const t of tokens) {
    if (t.kind === 'positional') {
      positionals.push(t.value);
      continue;
    }
    if (t.kind !== 'option') continue; // the `--` terminator
    let name = t.name;
    let negated = false;
    if (!Object.hasOwn(spec, name) && t.rawName.startsWith('--no-') && spec[name.slice(3)]?.type === 'boolean') {
      name = name.slice(3);
      negated = true;
    }
    const s = Object.hasOwn(spec, name) ? spec[name] : undefined;
    if (s === undefined) throw new UsageError(`unknown option ${t.rawName}`);
    if (Object.hasOwn(values, name)) throw new UsageError(`option --${name} given more than once`);
    if (s.type === 'boolean') {
      if (t.value !== undefined) throw new UsageError(`option --${name} takes no value`);
      values[name] = !negated;
    } else if (t.value === undefined || (!t.inlineValue && t.value.startsWith('--') && t.value.length > 2)) {
      throw new UsageError(`option --${name} needs a value`);
    } else {
      values[name] = t.value;
    }
  }
  if (positionals.length > maxPositionals) {
    throw new UsageError(`unexpected argument ${JSON.stringify(positionals[maxPositionals])}`);
  }
  return { values, positionals };
}

/** A string option's value (undefined when absent). */
export function stringOption(values: ParsedValues, name: string): string | undefined {
  const v = values[name];
  return typeof v === 'string' ? v : undefined;
}

/** Parses a whole number in [min, max]; the option name is used in the message. */
export function parseIntOption(name: string, raw: string, min: number, max = Number.MAX_SAFE_INTEGER): number {
  const s = raw.trim();
  if (!/^[+]?\d+$/.test(s)) throw new UsageError(`--${name} must be an integer, got ${JSON.stringify(raw)}`);
  const v = Number(s);
  if (!Number.isSafeInteger(v) || v < min || v > max) {
    const range = max === Number.MAX_SAFE_INTEGER ? `>= ${min}` : `in ${min}..${max}`;
    throw new UsageError(`--${name} must be ${range}, got ${raw}`);
  }
  return v;
}

/** An optional integer option in [min, max]: `dflt` when absent. */
export function intOption(values: ParsedValues, name: string, min: number, max?: number): number | undefined;
export function intOption(
  values: ParsedValues,
  name: string,
  min: number,
  max: number | undefined,
  dflt: number,
): number;
export function intOption(
  values: ParsedValues,
  name: string,
  min: number,
  max?: number,
  dflt?: number,
): number | undefined {
  const raw = stringOption(values, name);
  return raw === undefined ? dflt : parseIntOption(name, raw, min, max);
}

/**
 * Comma-separated integer list; "a-b" ranges are expanded. Values keep the
 * given order, duplicates are dropped.
 */
export function parseIntList(name: string, raw: string, min: number, max = Number.MAX_SAFE_INTEGER): number[] {
  const out: number[] = [];
  const items = raw.split(',').map((x) => x.trim());
  if (items.length === 0 || items.some((x) => x === '')) {
    throw new UsageError(`--${name} must be a comma-separated list of integers, got ${JSON.stringify(raw)}`);
  }
  for (const item of items) {
    const m = /^(\d+)-(\d+)$/.exec(item);
    if (m) {
      const a = parseIntOption(name, m[1]!, min, max);
      const b = parseIntOption(name, m[2]!, min, max);
      if (b < a) throw new UsageError(`--${name}: empty range ${item}`);
      if (b - a > 10000) throw new UsageError(`--${name}: range ${item} is too long`);
      for (let v = a; v <= b; v++) out.push(v);
    } else {
      if (!/^[+]?\d+$/.test(item)) {
        throw new UsageError(`--${name} values must be integers, got ${JSON.stringify(item)}`);
      }
      out.push(parseIntOption(name, item, min, max));
    }
  }
  return [...new Set(out)];
}

/** Comma-separated list of names from `allowed`. */
export function parseChoiceList<T extends string>(name: string, raw: string, allowed: readonly T[]): T[] {
  const items = raw
    .split(',')
    .map((x) => x.trim())
    .filter((x) => x !== '');
  if (items.length === 0) throw new UsageError(`--${name} needs at least one of ${allowed.join(', ')}`);
  for (const it of items) {
    if (!(allowed as readonly string[]).includes(it)) {
      throw new UsageError(`--${name}: unknown value ${JSON.stringify(it)} (expected ${allowed.join(', ')})`);
    }
  }
  return [...new Set(items)] as T[];
}

/** One of `allowed` (default `dflt`). */
export function choiceOption<T extends string>(values: ParsedValues, name: string, allowed: readonly T[], dflt: T): T {
  const raw = stringOption(values, name);
  if (raw === undefined) return dflt;
  if (!(allowed as readonly string[]).includes(raw)) {
    throw new UsageError(
      `--${name} must be ${allowed.slice(0, -1).join(', ')} or ${allowed.at(-1)}, got ${JSON.stringify(raw)}`,
    );
  }
  return raw as T;
}
