// Redis Cluster: each of a sender's turns starts only once the one before it finished.
// There a DM and a room's fan-out run on different nodes, and ioredis retries a command
// redirected by a failover on its own schedule, so without turns a later delivery could reach a
// recipient's node before an earlier one. On one Redis primary none of this is needed: every
// delivery reaches Redis in call order on one connection and runs as called.
//
// A room message takes a turn of its own. DMs share one: those a sender sends while its turn is
// taken wait together and then start in one go, in the order they were sent, so the DM batch
// (direct-batch.ts) gives each recipient their lines in one call. A window of DMs costs a round
// trip, not one per DM.

/** DMs sharing a turn that has not started; more than this wait for the next one. */
const MAX_SHARED_TURN = 500;

interface Turn {
  /** Settles once every delivery of the turn settled. */
  readonly settled: Promise<void>;
  /** DMs waiting to start together, in the order they were sent (undefined: a room message's turn, or started). */
  sharers: (() => Promise<unknown>)[] | undefined;
}

export class SenderTurns {
  private readonly last = new Map<string, Turn>();

  /** Runs `delivery` in a turn of its own, after the sender's previous turn settled. */
  take<T>(senderLoginId: string, delivery: () => Promise<T>): Promise<T> {
    const previous = this.last.get(senderLoginId)?.settled;
    const outcome = previous ? previous.then(delivery) : delivery();
    this.enqueue(senderLoginId, { settled: outcome.then(() => {}, () => {}), sharers: undefined });
    return outcome;
  }

  /**
   * Runs `delivery` in the sender's next turn, with the other DMs sent before it starts: at once
   * when the sender has no turn under way.
   */
  share<T>(senderLoginId: string, delivery: () => Promise<T>): Promise<T> {
    const tail = this.last.get(senderLoginId);
    if (!tail) return this.take(senderLoginId, delivery);
    let turn = tail.sharers && tail.sharers.length < MAX_SHARED_TURN ? tail : undefined;
    if (!turn) {
      const sharers: (() => Promise<unknown>)[] = [];
      const settled = tail.settled.then(() => {
        // Started: later DMs wait for the next turn.
        newTurn.sharers = undefined;
        return Promise.allSettled(sharers.map((start) => start()));
      }).then(() => {});
      const newTurn: Turn = { settled, sharers };
      this.enqueue(senderLoginId, newTurn);
      turn = newTurn;
    }
    return new Promise<T>((resolve, reject) => {
      turn.sharers!.push(() => {
        const outcome = started(delivery);
        outcome.then(resolve, reject);
        return outcome;
      });
    });
  }

  private enqueue(senderLoginId: string, turn: Turn): void {
    this.last.set(senderLoginId, turn);
    void turn.settled.then(() => {
      if (this.last.get(senderLoginId) === turn) this.last.delete(senderLoginId);
    });
  }
}

/** A delivery's outcome, a synchronous throw included. */
function started<T>(delivery: () => Promise<T>): Promise<T> {
  try {
    return delivery();
  } catch (error) {
    return Promise.reject(error);
  }
}
