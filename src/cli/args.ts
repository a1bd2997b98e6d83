/** A small strict command-line parser for the rabitq CLI. */

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
  /** repeated use is an error unless set */
  multiple?: boolean;
}

export type ParsedValues = Record<string, string | boolean | undefined>;

/**
 * Parse `argv` against `spec`. Accepts --name value, --name=value, -s value,
 * --flag and --no-flag (booleans). Unknown options, missing values and
 * positional arguments (unless allowed) throw UsageError.
 */
export function parseOptions(
  argv: readonly string[],
  spec: Record<string, OptionSpec>,
  allowPositionals = 0,
): { values: ParsedValues; positionals: string[] } {
  const values: ParsedValues = {};
  const positionals: string[] = [];
  const byShort = new Map<string, string>();
  for (const [name, s] of Object.entries(spec)) if (s.short) byShort.set(s.short, name);
  const seen = new Set<string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    let name: string | undefined;
    let inline: string | undefined;
    let negated = false;
    if (arg.startsWith('--')) {
      const eq = arg.indexOf('=');
      name = eq >= 0 ? arg.slice(2, eq) : arg.slice(2);
      inline = eq >= 0 ? arg.slice(eq + 1) : undefined;
      if (!(name in spec) && name.startsWith('no-') && spec[name.slice(3)]?.type === 'boolean') {
        name = name.slice(3);
        negated = true;
      }
      if (!(name in spec)) throw new UsageError(`unknown option --${name}`);
    } else if (arg.startsWith('-') && arg.length > 1 && !/^-\d/.test(arg)) {
      const s = arg.slice(1);
      name = byShort.get(s);
      if (name === undefined) throw new UsageError(`unknown option ${arg}`);
    } else {
      positionals.push(arg);
      continue;
    }
    const s = spec[name]!;
    if (seen.has(name) && !s.multiple) throw new UsageError(`option --${name} given more than once`);
    seen.add(name);
    if (s.type === 'boolean') {
      if (inline !== undefined) throw new UsageError(`option --${name} takes no value`);
      values[name] = !negated;
      continue;
    }
    if (negated) throw new UsageError(`unknown option --no-${name}`);
    let v = inline;
    if (v === undefined) {
      const next = argv[i + 1];
      if (next === undefined || (next.startsWith('--') && next.length > 2)) {
        throw new UsageError(`option --${name} needs a value`);
      }
      v = next;
      i++;
    }
    values[name] = v;
  }
  if (positionals.length > allowPositionals) {
    throw new UsageError(`unexpected argument ${JSON.stringify(positionals[allowPositionals])}`);
  }
  return { values, positionals };
}

/** Parse a whole number in [min, max]; the option name is used in the message. */
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
  const items = raw.split(',').map((x) => x.trim()).filter((x) => x !== '');
  if (items.length === 0) throw new UsageError(`--${name} needs at least one of ${allowed.join(', ')}`);
  for (const it of items) {
    if (!(allowed as readonly string[]).includes(it)) {
      throw new UsageError(`--${name}: unknown value ${JSON.stringify(it)} (expected ${allowed.join(', ')})`);
    }
  }
  return [...new Set(items)] as T[];
}
