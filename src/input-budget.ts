// Commands read from clients but not yet answered, across one worker. While Redis is slow,
// every pipelining client would otherwise have its commands held in memory here; past the
// budget, sessions stop reading (TCP backpressure) instead, and are woken in turn as room frees.

export class InputBudget {
  private used = 0;
  private readonly waiting = new Set<() => void>();

  constructor(readonly limitBytes: number) {}

  hasRoom(): boolean {
    return this.used < this.limitBytes;
  }

  take(bytes: number): void {
    this.used += bytes;
  }

  give(bytes: number): void {
    this.used -= bytes;
    // Half the budget free before anyone resumes, so sessions do not wake one command at a time.
    if (this.waiting.size === 0 || this.used > this.limitBytes / 2) return;
    const waiting = [...this.waiting];
    this.waiting.clear();
    for (const wake of waiting) wake();
  }

  /** Calls `wake` once the worker has room again. */
  waitForRoom(wake: () => void): void {
    this.waiting.add(wake);
  }

  get usedBytes(): number {
    return this.used;
  }
}
