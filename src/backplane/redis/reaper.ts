import type { Logger } from '../../log.js';
import { metrics } from '../../metrics.js';
import { recordedMember, type SharedState } from './shared-state.js';

// Cleans up after workers whose heartbeat key expired: logs out every session they recorded and
// removes them. Every worker runs a pass after each of its own successful heartbeats (so a
// worker that may have lost its own lease never reaps); a Lua claim makes exactly one worker
// do each dead one, and the claim expires so the work resumes if that worker dies too.

/** How long a reaper's claim on a dead worker lasts, in heartbeats. */
const CLAIM_BEATS = 10;

export class Reaper {
  private running = false;

  constructor(
    private readonly state: SharedState,
    private readonly workerId: () => string,
    private readonly beatMs: number,
    private readonly log: Logger,
  ) {}

  /** One pass over the registered workers; failures wait for the next pass. */
  async pass(): Promise<void> {
    if (this.running) return;
    this.running = true;
    const { commands, keys, scripts } = this.state;
    try {
      const me = this.workerId();
      for (const other of await commands.smembers(keys.workers())) {
        if (other === me) continue;
        const claimed = await scripts.claimReaping(keys.workerAlive(other), keys.workerReaper(other), me, this.beatMs * CLAIM_BEATS);
        if (claimed === 0) continue;
        const entries = await commands.smembers(keys.workerSessions(other));
        await Promise.all(entries.map((entry) => this.state.release(recordedMember(entry), other)));
        await commands.srem(keys.workers(), other);
        await commands.del(keys.workerSessions(other), keys.workerReaper(other));
        metrics.deadWorkersReaped.inc();
        this.log.info({ deadWorker: other, released: entries.length }, 'released the sessions of a dead worker');
      }
    } catch (error) {
      this.log.debug({ err: error }, 'reaper pass failed; the next one retries');
    } finally {
      this.running = false;
    }
  }
}
