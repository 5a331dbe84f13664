import * as hdr from 'hdr-histogram-js';
import type { SubscriberWatch } from './observe.js';

// What one scenario run measured, and the bookkeeping that proves delivery was exact.

export interface Result {
  mode: string;
  scenario: string;
  /** Deliveries counted in the measured window, per second. */
  rate: number;
  latencyMs: { p50: number; p90: number; p99: number; max: number };
  lost: number;
  duplicated: number;
  outOfOrder: number;
  /** Messages the server answered with an ERROR (left out of lost, duplicated and reordered). */
  refused?: number;
  /** The load generator's own CPU use during the window, in cores. */
  loadgenCores: number;
  notes: string[];
  extra?: Record<string, number>;
  /** Messages sent in the measured window: a room message counts once, whatever its members. */
  messages?: number;
  /** Those messages per second. */
  messageRate?: number;
  /** Cores each process used in the measured window, by label ("generator", "worker 1", "redis"). */
  cores?: Record<string, number>;
  /** Redis' CPU in the measured window (Redis mode only). */
  redis?: RedisCost;
  /** Subscriber connections Redis cut during the whole row, setup to drain (Redis mode only). */
  subscribers?: SubscriberWatch;
}

export interface RedisCost {
  /** Redis' CPU over the measured window, all of it. */
  cpuMicros: number;
  /** What it uses idle over as long (measured just before the row); taken off the figures below. */
  idleMicros: number;
  perMessageMicros: number;
  perDeliveryMicros: number;
}

export function newHistogram(): hdr.Histogram {
  // Microseconds, up to 60 s, 3 significant digits.
  return hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: 3 });
}

export function latencyOf(histogram: hdr.Histogram): Result['latencyMs'] {
  const ms = (us: number) => Math.round(us) / 1000;
  return {
    p50: ms(histogram.getValueAtPercentile(50)),
    p90: ms(histogram.getValueAtPercentile(90)),
    p99: ms(histogram.getValueAtPercentile(99)),
    max: ms(histogram.maxValue),
  };
}

export const nowMicros = () => Math.round(performance.now() * 1000);

/**
 * Sequence numbers one receiver got from one sender: finds loss (counted by the caller from
 * `unique`), duplicates and reordering. Reordered means arriving after a later message: a gap
 * alone is a loss, or a message the server refused, and is not counted here.
 */
export class SequenceTracker {
  private seen = new Uint8Array(1024);
  /** One past the highest sequence number seen. */
  private next = 0;
  unique = 0;
  duplicated = 0;
  outOfOrder = 0;

  record(seq: number): void {
    while (seq >= this.seen.length) {
      const bigger = new Uint8Array(this.seen.length * 2);
      bigger.set(this.seen);
      this.seen = bigger;
    }
    if (this.seen[seq]) {
      this.duplicated++;
      return;
    }
    this.seen[seq] = 1;
    this.unique++;
    if (seq < this.next) this.outOfOrder++;
    else this.next = seq + 1;
  }
}

/** Fraction of one core this process used since `since` (from process.cpuUsage). */
export function coresUsed(since: NodeJS.CpuUsage, wallMs: number): number {
  const used = process.cpuUsage(since);
  return (used.user + used.system) / 1000 / wallMs;
}
