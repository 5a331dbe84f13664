import { metrics } from '../../metrics.js';
import { BackplaneUnavailableError } from '../errors.js';
import type { Member } from '../types.js';
import type { RedisKeys } from './keys.js';
import { awaitReply } from './reply-wait.js';
import { type ChatScripts, type Deadline, EXPIRED } from './scripts.js';

// DMs accepted in one event-loop turn go to Redis as one script call, not one call each: a
// call costs ioredis and Redis far more than a message does, so batching is what lets a worker
// keep up with clients that send fast. Within a batch, one sender's lines to one recipient
// travel joined, as one run: the script checks the sender and the recipient once per run, not
// per message, and ioredis encodes a few arguments, not four per message. A recipient's runs are
// joined in the order they began and batches leave in order on one connection, so per-sender
// order holds (lines of different senders in one turn have no order to keep).
//
// On one Redis primary a turn's DMs are one batch, and the script also checks that each sender
// still holds its name. On Redis Cluster a script may touch one slot only: a batch per
// recipient, and the sender's hold on its name is guarded by the worker's lease alone. There a
// recipient's next batch is sent only once the one before it was answered: a sender's turn
// (sender-turns.ts) may put more lines for one recipient than fit in one batch, and two calls in
// flight to one slot can be reordered by ioredis' redirections in a failover.

/** A batch is sent at once when it holds this many messages, so no call grows without bound. */
const MAX_BATCH_MESSAGES = 1000;

/** Per message: delivered, recipient not logged in, or sender no longer holds its name. */
export type DirectOutcome = 1 | 0 | -2;

/** One sender's lines to one recipient within a batch: one outcome for all of them. */
interface Run {
  /** The sender's position among the keys (0: unchecked), its login id, the recipient's position. */
  readonly senderPosition: number;
  readonly senderLoginId: string;
  readonly recipientPosition: number;
  readonly lines: string[];
}

interface Batch {
  /** User name key → its position among the script's keys (1-based, as the script counts). */
  readonly positions: Map<string, number>;
  readonly userKeys: string[];
  /** Recipient position → sender login id → index in `runs`. */
  readonly runIndex: Map<number, Map<string, number>>;
  readonly runs: Run[];
  messages: number;
  /** One outcome per run. */
  readonly outcomes: Promise<DirectOutcome[]>;
  send(): void;
}

export interface DirectBatchOptions {
  /** Check each sender's name in the script (one Redis primary only: the keys span slots). */
  checkSenders: boolean;
  publish: 'PUBLISH' | 'SPUBLISH';
  /** The deadline for a batch sent now. */
  deadline: () => Deadline;
}

export class DirectMessageBatcher {
  /** Open batches by group: one group on one primary, one per recipient on Redis Cluster. */
  private readonly open = new Map<string, Batch>();
  /** Redis Cluster: by recipient, settles once the batch last sent to them was answered. */
  private readonly answered = new Map<string, Promise<void>>();

  constructor(
    private readonly scripts: ChatScripts,
    private readonly keys: RedisKeys,
    private readonly options: DirectBatchOptions,
  ) {}

  /** Queues a complete line for the user with this name key; resolves with what `told` makes of its outcome. */
  send<T>(sender: Member, senderKey: string, recipientKey: string, line: string, told: (outcome: DirectOutcome) => T): Promise<T> {
    const group = this.options.checkSenders ? '' : recipientKey;
    const batch = this.open.get(group) ?? this.start(group);
    const senderPosition = this.options.checkSenders ? this.position(batch, senderKey) : 0;
    const recipientPosition = this.position(batch, recipientKey);
    let runs = batch.runIndex.get(recipientPosition);
    if (!runs) batch.runIndex.set(recipientPosition, runs = new Map());
    let run = runs.get(sender.loginId);
    if (run === undefined) {
      run = batch.runs.push({ senderPosition, senderLoginId: sender.loginId, recipientPosition, lines: [] }) - 1;
      runs.set(sender.loginId, run);
    }
    batch.runs[run]!.lines.push(line);
    if (++batch.messages >= MAX_BATCH_MESSAGES) this.flushGroup(group);
    return batch.outcomes.then((outcomes) => told(outcomes[run]!));
  }

  /** Sends what is queued now, so that whatever is sent next cannot overtake it. */
  flush(): void {
    for (const group of [...this.open.keys()]) this.flushGroup(group);
  }

  private flushGroup(group: string): void {
    const batch = this.open.get(group);
    if (!batch) return;
    this.open.delete(group);
    if (this.options.checkSenders) return batch.send();
    const previous = this.answered.get(group);
    if (previous) void previous.then(batch.send);
    else batch.send();
    const answered = batch.outcomes.then(() => {}, () => {});
    this.answered.set(group, answered);
    void answered.then(() => {
      if (this.answered.get(group) === answered) this.answered.delete(group);
    });
  }

  private position(batch: Batch, userKey: string): number {
    let position = batch.positions.get(userKey);
    if (position === undefined) {
      position = batch.userKeys.push(userKey);
      batch.positions.set(userKey, position);
    }
    return position;
  }

  private start(group: string): Batch {
    let send!: () => void;
    const outcomes = new Promise<DirectOutcome[]>((resolve, reject) => {
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
    const batch: Batch = { positions: new Map(), userKeys: [], runIndex: new Map(), runs: [], messages: 0, outcomes, send };
    this.open.set(group, batch);
    setImmediate(() => {
      if (this.open.get(group) === batch) this.flushGroup(group);
    });
    return batch;
  }

  private async publish(batch: Batch): Promise<DirectOutcome[]> {
    const { userKeys, runs } = batch;
    const runArgs: (string | number)[] = [];
    for (const run of runs) runArgs.push(run.senderPosition, run.senderLoginId, run.recipientPosition, run.lines.join(''));
    const call = this.scripts.sendDirect(
      userKeys.length,
      ...userKeys.map((userKey) => this.keys.user(userKey)),
      this.options.deadline(), this.options.publish, runs.length,
      ...userKeys.map((userKey) => this.keys.userInbox(userKey)),
      ...runArgs,
    );
    const outcomes = await awaitReply(call, (late) => {
      // Answered SERVICE UNAVAILABLE, delivered anyway: cannot be taken back; counted.
      const delivered = runs.reduce((sum, run, i) => sum + (late[i] === 1 ? run.lines.length : 0), 0);
      if (delivered > 0) metrics.lateEffects.inc({ kind: 'dm' }, delivered);
    });
    if (outcomes[0] === EXPIRED && outcomes.length === 1) throw new BackplaneUnavailableError('timeout');
    return outcomes as DirectOutcome[];
  }
}
