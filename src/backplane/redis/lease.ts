import type { Logger } from '../../log.js';
import { metrics } from '../../metrics.js';
import { BackplaneUnavailableError } from '../errors.js';
import { asBackplaneError } from './client.js';
import { awaitReply } from './reply-wait.js';
import type { Deadline } from './scripts.js';

// A worker's lease on the sessions it holds, kept by a heartbeat: a key with a TTL that every
// other worker's reaper watches. Once the key is gone the worker is taken for dead and its
// sessions are released, so the worker must have stopped acting for them by then.
//
// Fencing: the worker serves commands only while its last successful heartbeat, measured on its
// own monotonic clock from when that heartbeat was *sent*, is younger than the key's lifetime
// minus a margin. Redis started the key's TTL no earlier than that send, so the key outlives the
// lease. After a pause the lease has run out and the next command waits for a heartbeat to
// re-verify it (the gate in index.ts); if the key was gone, the worker was taken for dead (onLost).
//
// The heartbeat also reads Redis' clock, so the worker can turn "this long from now" into a
// deadline on Redis' clock for fenced scripts (reply-wait.ts). The offset kept is a lower bound
// of (Redis' clock − ours): TIME was read before the reply reached us. A deadline is never later
// than the lease, so no command of a worker runs after its key could have expired.

/** Heartbeats per NODE_TTL_MS; the reaper looks as often. */
const BEATS_PER_TTL = 10;
/** Redis is not asked more often than this, however short NODE_TTL_MS. */
const MIN_BEAT_MS = 100;
/** The key lives this share of NODE_TTL_MS unless renewed. */
const KEY_SHARE = 0.7;
/** The worker stops acting this share of NODE_TTL_MS before its key could expire. */
const MARGIN_SHARE = 0.1;
/** A deadline no script can meet (0 would mean "no deadline"). */
const ALREADY_PAST = 1;
/** A heartbeat that gets no answer within this many beats counts as failed. */
const BEAT_TIMEOUT_BEATS = 2;

export interface LeaseTiming {
  /** Heartbeat (and reaper) period. */
  beatMs: number;
  /** Lifetime of the liveness key. */
  keyTtlMs: number;
  /** How long after a heartbeat was sent the worker may act on it. */
  serveMs: number;
}

/**
 * With NODE_TTL_MS = T: a worker paused for less than T/2 keeps its sessions (its key lives
 * 0.7 T after its last beat, sent at most 0.1 T before the pause); one silent for longer than T
 * loses them (the key expires within 0.7 T, a reaper looks every 0.1 T).
 */
export function leaseTiming(nodeTtlMs: number): LeaseTiming {
  return {
    beatMs: Math.max(MIN_BEAT_MS, Math.floor(nodeTtlMs / BEATS_PER_TTL)),
    keyTtlMs: Math.floor(nodeTtlMs * KEY_SHARE),
    serveMs: Math.floor(nodeTtlMs * (KEY_SHARE - MARGIN_SHARE)),
  };
}

export type BeatOutcome = 'ok' | 'gone' | 'failed';

/** One heartbeat: [1 = kept or made, 0 = gone or taken, Redis' TIME seconds, microseconds]. */
export type Heartbeat = (mode: 'renew' | 'register') => Promise<[0 | 1, string, string]>;

export class Lease {
  private validUntil = Number.NEGATIVE_INFINITY;
  private offsetMs = 0;
  private beating: Promise<BeatOutcome> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private failedBeats = 0;
  /** Counts registrations: a heartbeat sent before the latest one speaks for a key no longer ours. */
  private registrations = 0;
  /** Why the last heartbeat failed, for status: undefined after a success. */
  lastFailure: BackplaneUnavailableError | undefined;

  constructor(
    private readonly heartbeat: Heartbeat,
    readonly timing: LeaseTiming,
    private readonly events: {
      /** The key was gone: this worker was taken for dead, its sessions (maybe) released. */
      lost(): void;
      /** Heartbeats keep getting no answer on a connection that looks up. */
      unanswered(): void;
      /** A heartbeat sent at `sentAt` succeeded: the lease is valid (again), and its probe is on its way. */
      renewed(sentAt: number): void;
    },
    private readonly log: Logger,
  ) {}

  /** Makes the key (a new worker id) and starts heartbeating. */
  async register(): Promise<void> {
    this.registrations++;
    const outcome = await this.beatOnce('register');
    if (outcome !== 'ok') throw this.lastFailure ?? new Error('a new worker id was already registered');
    this.timer ??= setInterval(() => void this.beat(), this.timing.beatMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    this.validUntil = Number.NEGATIVE_INFINITY;
  }

  valid(): boolean {
    return performance.now() < this.validUntil;
  }

  /**
   * A deadline on Redis' clock `budgetMs` from now, never past the lease. Without a lease it is
   * already past (1 ms after the epoch): a script fenced by it does nothing.
   */
  deadline(budgetMs: number): Deadline {
    return Math.max(ALREADY_PAST, Math.min(performance.now() + budgetMs, this.validUntil) + this.offsetMs);
  }

  /** Heartbeats now unless one is already under way. */
  beat(): Promise<BeatOutcome> {
    this.beating ??= this.beatOnce('renew').finally(() => { this.beating = undefined; });
    return this.beating;
  }

  private async beatOnce(mode: 'renew' | 'register'): Promise<BeatOutcome> {
    const sentAt = performance.now();
    const registration = this.registrations;
    let reply: [0 | 1, string, string];
    try {
      // A heartbeat answered too late proves nothing about now: its late reply is ignored.
      reply = await awaitReply(this.heartbeat(mode), () => {}, this.timing.beatMs * BEAT_TIMEOUT_BEATS);
    } catch (error) {
      const failure = asBackplaneError(error);
      this.lastFailure = failure instanceof BackplaneUnavailableError
        ? failure
        : new BackplaneUnavailableError('unreachable', { cause: error });
      if (++this.failedBeats >= BEAT_TIMEOUT_BEATS && this.lastFailure.reason === 'timeout') this.events.unanswered();
      return 'failed';
    }
    // A renewal for an earlier worker id (taken for dead; registered again meanwhile) says
    // nothing about the current one: its "gone" must not start a second renewal.
    if (registration !== this.registrations) return 'failed';
    const receivedAt = performance.now();
    metrics.redisDuration.observe((receivedAt - sentAt) / 1000);
    this.failedBeats = 0;
    this.lastFailure = undefined;
    const [status, seconds, microseconds] = reply;
    if (status === 0) {
      this.validUntil = Number.NEGATIVE_INFINITY;
      if (mode === 'renew') {
        this.log.warn('heartbeat key was gone: this worker was taken for dead');
        this.events.lost();
      }
      return 'gone';
    }
    this.offsetMs = Number(seconds) * 1000 + Number(microseconds) / 1000 - receivedAt;
    this.validUntil = sentAt + this.timing.serveMs;
    this.events.renewed(sentAt);
    return 'ok';
  }
}
