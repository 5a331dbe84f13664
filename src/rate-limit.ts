// A token bucket per connection: `burst` commands at once, refilled at `perSecond`.
// perSecond 0 turns limiting off (benchmarks and trusted bridges).

export class TokenBucket {
  private tokens: number;
  private refilledAt: number;

  constructor(private readonly perSecond: number, private readonly burst: number, now = performance.now()) {
    this.tokens = burst;
    this.refilledAt = now;
  }

  /** Takes one token if there is one. */
  take(now = performance.now()): boolean {
    if (this.perSecond === 0) return true;
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.refilledAt) / 1000) * this.perSecond);
    this.refilledAt = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}
