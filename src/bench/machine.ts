/** Machine, affinity and repository facts recorded with every benchmark. */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import type { MachineInfo } from './types.js';

function readText(path: string): string | null {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return null;
  }
}

export function cpuModel(): string {
  const info = readText('/proc/cpuinfo');
  if (info) {
    const m = /^model name\s*:\s*(.+)$/m.exec(info);
    if (m) return m[1]!.trim();
  }
  return os.cpus()[0]?.model?.trim() || 'unknown';
}

/** Parse a Linux CPU list such as "0-3,8,10-11" into CPU ids. */
export function parseCpuList(list: string): number[] {
  const cpus: number[] = [];
  for (const part of list.trim().split(',')) {
    if (part === '') continue;
    const m = /^(\d+)(?:-(\d+))?$/.exec(part.trim());
    if (!m) continue;
    const a = Number(m[1]);
    const b = m[2] === undefined ? a : Number(m[2]);
    for (let c = a; c <= b; c++) cpus.push(c);
  }
  return cpus;
}

/** The CPU affinity list of this process (Cpus_allowed_list), or null if unknown. */
export function cpusAllowedList(): string | null {
  const status = readText('/proc/self/status');
  if (!status) return null;
  const m = /^Cpus_allowed_list:\s*(.+)$/m.exec(status);
  return m ? m[1]!.trim() : null;
}

export function logicalCpus(): number {
  return os.cpus().length || 1;
}

export function gitCommit(cwd?: string): string {
  try {
    const out = execFileSync('git', ['rev-parse', '--short', 'HEAD'], {
      cwd,
      stdio: ['ignore', 'pipe', 'ignore'],
      timeout: 5000,
    });
    const s = out.toString().trim();
    return s === '' ? 'unknown' : s;
  } catch {
    return 'unknown';
  }
}

export function machineInfo(simdLevel: string): MachineInfo {
  const total = logicalCpus();
  const list = cpusAllowedList();
  const allowed = list ? parseCpuList(list).length : total;
  return {
    cpuModel: cpuModel(),
    logicalCpus: total,
    cpusAllowedList: list ?? `0-${total - 1}`,
    cpusAllowed: allowed || total,
    simdLevel,
    node: process.version,
    platform: process.platform,
    arch: process.arch,
    totalMemoryBytes: os.totalmem(),
    hostname: os.hostname(),
  };
}

/**
 * Warnings about the measurement setup: an unpinned process on a multi-CPU
 * machine, or more threads requested than CPUs allowed.
 */
export function affinityWarnings(machine: MachineInfo, threads: number): string[] {
  const warnings: string[] = [];
  if (machine.logicalCpus > 1 && machine.cpusAllowed >= machine.logicalCpus) {
    warnings.push(
      `process is not pinned (allowed CPUs ${machine.cpusAllowedList} = all ${machine.logicalCpus}); ` +
        `timings may be noisy, consider e.g. "taskset -c ${machine.logicalCpus - 1} ..."`,
    );
  }
  if (threads > machine.cpusAllowed) {
    warnings.push(
      `--threads ${threads} exceeds the ${machine.cpusAllowed} CPU(s) this process may run on (${machine.cpusAllowedList})`,
    );
  }
  return warnings;
}
