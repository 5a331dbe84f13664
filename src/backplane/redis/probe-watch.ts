// Whether a worker's delivery connection still delivers: each heartbeat that succeeds has
// published a probe to the worker's own channel, which must come back through the connection.
// A connection that stays up but delivers nothing is the failure no error reports.
//
// Silence is counted from the publication of a probe that has not come back, not from the last
// probe seen, so a worker slowed down as a whole (heartbeats and probes late alike) is not
// mistaken for a silent connection.

export class ProbeWatch {
  private lastSeenAt = performance.now();
  /** When the oldest probe not yet seen back was published (undefined: none outstanding). */
  private unseenSince: number | undefined;
  private connectedAt = performance.now();

  constructor(private readonly silentAfterMs: number) {}

  /** A heartbeat sent at `sentAt` succeeded: its probe is on its way. */
  published(sentAt: number): void {
    this.unseenSince ??= sentAt;
  }

  /** A probe came back. */
  seen(): void {
    this.lastSeenAt = performance.now();
    this.unseenSince = undefined;
  }

  /** The delivery connection was (re)made: what was outstanding is forgotten. */
  connected(): void {
    this.connectedAt = performance.now();
    this.unseenSince = undefined;
  }

  /** A probe published long ago has not come back, over a connection up all that time. */
  silent(): boolean {
    const now = performance.now();
    return this.unseenSince !== undefined && now - this.unseenSince > this.silentAfterMs && now - this.connectedAt > this.silentAfterMs;
  }

  /** Since the last probe came back. */
  lagMs(): number {
    return performance.now() - this.lastSeenAt;
  }
}
