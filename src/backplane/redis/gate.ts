import { BackplaneUnavailableError, type UnavailableReason } from '../errors.js';

// Admits commands to Redis: only while the worker may act (its lease holds, no reconcile is
// under way), and in the order they came. When the gate is open and nobody waits, a command is
// admitted in the very call, so commands start (and reach Redis) in call order; when it is
// closed they wait in line, in that order, for a bounded time. It also knows how many admitted
// commands are still running, so a reconcile can start once they are done.

interface Waiter {
  resolve(): void;
  reject(error: unknown): void;
  timer: NodeJS.Timeout;
}

export class CommandGate {
  private readonly queue: Waiter[] = [];
  /** Commands admitted and not finished. */
  private running = 0;
  private drainWaiters: (() => void)[] = [];

  constructor(
    /** Whether commands may go to Redis now. */
    private readonly open: () => boolean,
    /** Why a command that waited its whole time was refused. */
    private readonly closedReason: () => UnavailableReason,
    private readonly maxWaitMs: number,
  ) {}

  /** Undefined when admitted at once; else a promise settled in arrival order, or refused after maxWaitMs. */
  enter(): Promise<void> | undefined {
    if (this.queue.length === 0 && this.open()) {
      this.running++;
      return undefined;
    }
    return new Promise<void>((resolve, reject) => {
      const waiter: Waiter = {
        resolve,
        reject,
        timer: setTimeout(() => {
          this.queue.splice(this.queue.indexOf(waiter), 1);
          reject(new BackplaneUnavailableError(this.closedReason()));
        }, this.maxWaitMs),
      };
      this.queue.push(waiter);
    });
  }

  /** An admitted command finished. */
  leave(): void {
    if (--this.running > 0) return;
    const waiters = this.drainWaiters;
    this.drainWaiters = [];
    for (const wake of waiters) wake();
  }

  /** Admits whoever waits, in order, for as long as the gate is open (call when it may have opened). */
  pump(): void {
    while (this.queue.length > 0 && this.open()) {
      const waiter = this.queue.shift()!;
      clearTimeout(waiter.timer);
      this.running++;
      waiter.resolve();
    }
  }

  /** Resolves once no admitted command is still running. */
  drained(): Promise<void> {
    if (this.running === 0) return Promise.resolve();
    return new Promise((resolve) => this.drainWaiters.push(resolve));
  }

  /** Refuses everyone waiting (closing). */
  refuseAll(error: unknown): void {
    for (const waiter of this.queue.splice(0)) {
      clearTimeout(waiter.timer);
      waiter.reject(error);
    }
  }
}
