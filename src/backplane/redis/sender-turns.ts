// Redis Cluster: each of a sender's deliveries is made only once the one before it finished.
// There a DM and a room's fan-out run on different nodes, and ioredis retries a command
// redirected by a failover on its own schedule, so without turns a later delivery could reach a
// recipient's node before an earlier one. On one Redis primary none of this is needed: every
// delivery reaches Redis in call order on one connection and runs as called.

export class SenderTurns {
  private readonly last = new Map<string, Promise<void>>();

  /** Runs `delivery` after the sender's previous one settled; resolves with its outcome. */
  take<T>(senderLoginId: string, delivery: () => Promise<T>): Promise<T> {
    const previous = this.last.get(senderLoginId);
    const turn = previous ? previous.then(delivery) : delivery();
    const settled = turn.then(() => {}, () => {});
    this.last.set(senderLoginId, settled);
    void settled.then(() => {
      if (this.last.get(senderLoginId) === settled) this.last.delete(senderLoginId);
    });
    return turn;
  }
}
