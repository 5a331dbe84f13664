import type { Logger } from '../../log.js';
import type { BackplaneUnavailableError } from '../errors.js';

// An outage is two log lines, not one per refused command: a warning when the first command is
// refused, saying why, and one when the shared state works again, with how many were refused
// and for how long.

export class OutageLog {
  private since: number | undefined;
  private refusedCount = 0;

  constructor(private readonly log: Logger) {}

  refused(error: BackplaneUnavailableError): void {
    this.refusedCount++;
    if (this.since !== undefined) return;
    this.since = performance.now();
    const cause = error.cause instanceof Error ? error.cause.message : undefined;
    this.log.warn({ reason: error.reason, cause }, 'shared state unavailable: commands answer ERROR SERVICE UNAVAILABLE');
  }

  /** The shared state works again (a heartbeat went through with everything up). */
  over(): void {
    if (this.since === undefined) return;
    this.log.warn({ refused: this.refusedCount, outageMs: Math.round(performance.now() - this.since) },
      'shared state available again');
    this.since = undefined;
    this.refusedCount = 0;
  }
}
