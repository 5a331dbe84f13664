import type { Socket } from 'node:net';

// A sender's window of room messages is read in one go, and each is written to Redis the moment
// it is called (scripts.ts, UNPIPELINED_COMMANDS): one write each. An idle Redis then wakes for
// the first, runs it and publishes it alone, so every worker reads the window one message at a
// time and writes each member one line per message: the socket writes that cost big rooms most.
// Held until the calls made in this stretch of synchronous work are done (the next tick, not the
// next turn of the event loop), they leave as one write: Redis runs them in one go, each worker
// reads them together, and a member gets them in one write. Order is unchanged: one connection.

export class TurnWrites {
  private holding = false;

  /** `stream`: the connection's socket as it is now (it changes when the client reconnects). */
  constructor(private readonly stream: () => Socket | undefined) {}

  /** Holds the connection's writes until the current synchronous work is done. */
  hold(): void {
    if (this.holding) return;
    const stream = this.stream();
    if (!stream) return;
    this.holding = true;
    stream.cork();
    process.nextTick(() => {
      this.holding = false;
      stream.uncork();
    });
  }
}
