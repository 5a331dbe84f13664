import type { RedisKeys } from './keys.js';
import type { ChatScripts } from './scripts.js';

// DMs accepted in one event-loop turn go to Redis as one script call, not one call each: a
// call costs ioredis and Redis far more than a message does, so batching is what lets a worker
// keep up with clients that send fast. A recipient's lines are joined in the order they were
// sent and batches leave in order on one connection, so per-sender order holds.

/** A batch is sent at once when it holds this many messages, so no call grows without bound. */
const MAX_BATCH_MESSAGES = 1000;

interface Batch {
  /** Recipient name key → its position in the call. */
  readonly positions: Map<string, number>;
  readonly userKeys: string[];
  readonly lines: string[];
  messages: number;
  /** Per recipient: 1 if it was logged in and got its lines, else 0. */
  readonly published: Promise<(0 | 1)[]>;
  send(): void;
}

export class DirectMessageBatcher {
  private open: Batch | undefined;

  constructor(
    private readonly scripts: ChatScripts,
    private readonly keys: RedisKeys,
  ) {}

  /** Queues a complete line for the user with this name key; resolves with whether it was delivered. */
  send(userKey: string, line: string): Promise<boolean> {
    const batch = this.open ?? this.start();
    let position = batch.positions.get(userKey);
    if (position === undefined) {
      position = batch.userKeys.push(userKey) - 1;
      batch.positions.set(userKey, position);
      batch.lines.push(line);
    } else {
      batch.lines[position] += line;
    }
    if (++batch.messages >= MAX_BATCH_MESSAGES) this.flush();
    return batch.published.then((published) => published[position] === 1);
  }

  /** Sends what is queued now, so that whatever is sent next cannot overtake it. */
  flush(): void {
    const batch = this.open;
    if (!batch) return;
    this.open = undefined;
    batch.send();
  }

  private start(): Batch {
    let send!: () => void;
    const published = new Promise<(0 | 1)[]>((resolve, reject) => {
      // Any failure, even a synchronous one, reaches the senders as a rejection, never the
      // caller of flush() (a room message, or the event loop).
      send = () => {
        try {
          resolve(this.publish(batch));
        } catch (error) {
          reject(error);
        }
      };
    });
    const batch: Batch = { positions: new Map(), userKeys: [], lines: [], messages: 0, published, send };
    this.open = batch;
    setImmediate(() => {
      if (this.open === batch) this.flush();
    });
    return batch;
  }

  private publish(batch: Batch): Promise<(0 | 1)[]> {
    const { userKeys } = batch;
    return this.scripts.sendToUsers(
      userKeys.length,
      ...userKeys.map((userKey) => this.keys.user(userKey)),
      ...userKeys.map((userKey) => this.keys.userChannel(userKey)),
      ...batch.lines,
    );
  }
}
