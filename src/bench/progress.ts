/** A cli-progress bar fed by IvfRabitqIndex.build's onProgress callback. */
import cliProgress from 'cli-progress';
import type { BuildProgress } from './types.js';

export interface BuildProgressBar {
  onProgress: (p: BuildProgress) => void;
  stop(): void;
}

const PHASE_LABEL: Record<BuildProgress['phase'], string> = {
  train: 'k-means',
  assign: 'assign ',
  encode: 'encode ',
};

/** A progress bar on `stream` (stderr by default); a no-op when disabled. */
export function buildProgressBar(enabled: boolean, stream: NodeJS.WritableStream = process.stderr): BuildProgressBar {
  if (!enabled) return { onProgress: () => {}, stop: () => {} };
  let bar: cliProgress.SingleBar | null = null;
  let phase: string | null = null;
  const stop = () => {
    if (bar) bar.stop();
    bar = null;
    phase = null;
  };
  return {
    onProgress(p) {
      if (p.phase !== phase || !bar) {
        stop();
        phase = p.phase;
        bar = new cliProgress.SingleBar(
          {
            format: `  build ${PHASE_LABEL[p.phase] ?? p.phase} [{bar}] {percentage}% | {value}/{total} | {duration_formatted}`,
            stream,
            hideCursor: true,
            barsize: 30,
            fps: 10,
          },
          cliProgress.Presets.shades_classic,
        );
        bar.start(Math.max(1, p.total), 0);
      }
      bar.setTotal(Math.max(1, p.total));
      bar.update(Math.min(p.done, Math.max(1, p.total)));
    },
    stop,
  };
}
