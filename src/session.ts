import type { Socket } from 'node:net';
import type { Backplane, Member } from './backplane/types.js';
import type { Config } from './config.js';
import type { Logger } from './log.js';
import { LineFramer } from './protocol/framer.js';
import { nameKey } from './protocol/names.js';
import { type Command, parseCommand } from './protocol/parser.js';
import { replies } from './protocol/replies.js';
import { TokenBucket } from './rate-limit.js';

// One client connection: framer → parser → backplane → replies → socket.
//
// Replies leave in command order, but commands need not run one at a time: MSG changes no
// session state, so pipelined MSGs run concurrently (the backplane keeps their order, Redis
// runs one connection's commands in order). Commands that change or depend on what this
// session holds (LOGIN, LOGOUT, JOIN, PART, and the final cleanup) are barriers: they start
// after everything before them was dispatched and finish before anything after them starts.

export type SessionLimits = Pick<Config, 'maxLineBytes' | 'maxPendingBytes' | 'ratePerSec' | 'rateBurst' | 'idleTimeoutMs'>;

export interface SessionContext {
  backplane: Backplane;
  log: Logger;
  limits: SessionLimits;
}

type Step = Command | { kind: 'disconnect' };

/** A reply's place in the output order; filled in when its command finishes. */
interface ReplySlot {
  text: string | undefined;
}

// Read no more from a client that has this many commands unanswered: bounds memory per
// connection for clients that pipeline without reading.
const MAX_UNANSWERED = 256;

export class Session {
  private readonly framer: LineFramer;
  private readonly allowance: TokenBucket;
  private me: Member | undefined;
  /** Rooms joined, as spelled at JOIN, by room key: what to restore if Redis loses them. */
  private readonly rooms = new Map<string, string>();
  private readonly replySlots: ReplySlot[] = [];
  private readonly waiting: { step: Step; slot: ReplySlot }[] = [];
  private barrierRunning = false;
  /** What this turn wrote to the client, sent as one write when the turn ends. */
  private output: (string | Uint8Array)[] = [];
  private paused = false;
  /** Resolves once the connection is closed and its user logged out. */
  readonly finished: Promise<void>;
  private finish!: () => void;

  constructor(
    readonly id: string,
    private readonly socket: Socket,
    private readonly context: SessionContext,
  ) {
    const { limits } = context;
    this.framer = new LineFramer(limits.maxLineBytes);
    this.allowance = new TokenBucket(limits.ratePerSec, limits.rateBurst);
    this.finished = new Promise((resolve) => { this.finish = resolve; });
    socket.setNoDelay(true);
    if (limits.idleTimeoutMs > 0) {
      socket.setTimeout(limits.idleTimeoutMs, () => this.closeWith(replies.idleTimeout()));
    }
    socket.on('data', (chunk: Buffer) => this.receive(chunk));
    socket.on('error', (error) => context.log.debug({ connection: id, err: error }, 'socket error'));
    socket.on('close', () => this.onClose());
  }

  get user(): string | undefined {
    return this.me?.user;
  }

  /** Who this session is and which rooms it is in, while logged in. */
  get standing(): { member: Member; rooms: string[] } | undefined {
    return this.me && { member: this.me, rooms: [...this.rooms.values()] };
  }

  /** The shared state gave this session's name to another: tell the client, forget the login. */
  loseName(): void {
    const me = this.forgetLogin();
    if (!me) return;
    this.context.log.warn({ connection: this.id, user: me.user }, 'session lost its name to another login');
    this.write(replies.nameTaken(me.user));
  }

  /** Lines from other connections (GOTROOMMSG, GOTUSERMSG). */
  deliver(lines: string | Uint8Array): void {
    this.write(lines);
  }

  /** Sends one last line and closes; the usual cleanup (logout) follows. */
  closeWith(line: string): void {
    this.write(line);
    this.flushOutput();
    this.socket.end();
  }

  private receive(chunk: Buffer): void {
    for (const frame of this.framer.push(chunk)) {
      if (!this.allowance.take()) {
        this.reply(replies.rateLimited());
        continue;
      }
      if ('error' in frame) {
        this.reply(replies.error(frame.error));
        continue;
      }
      const parsed = parseCommand(frame.line);
      if (parsed.kind === 'error') this.reply(replies.error(parsed.error));
      else this.enqueue(parsed);
    }
    if (this.replySlots.length >= MAX_UNANSWERED && !this.paused) {
      this.paused = true;
      this.socket.pause();
    }
  }

  private reply(text: string): void {
    this.replySlots.push({ text });
    this.flushReplies();
  }

  private enqueue(step: Step): void {
    const slot: ReplySlot = { text: undefined };
    this.replySlots.push(slot);
    this.waiting.push({ step, slot });
    this.dispatch();
  }

  private dispatch(): void {
    while (!this.barrierRunning && this.waiting.length > 0) {
      const { step, slot } = this.waiting.shift()!;
      const barrier = step.kind !== 'roomMessage' && step.kind !== 'userMessage';
      if (barrier) this.barrierRunning = true;
      this.run(step).then((text) => {
        slot.text = text;
        if (barrier) {
          this.barrierRunning = false;
          this.dispatch();
        }
        this.flushReplies();
      });
    }
  }

  private flushReplies(): void {
    while (this.replySlots.length > 0 && this.replySlots[0]!.text !== undefined) {
      this.write(this.replySlots.shift()!.text!);
    }
    if (this.paused && this.replySlots.length < MAX_UNANSWERED / 2) {
      this.paused = false;
      this.socket.resume();
    }
  }

  private async run(step: Step): Promise<string> {
    try {
      return await this.execute(step);
    } catch (error) {
      this.context.log.warn({ connection: this.id, command: step.kind, err: error }, 'command failed');
      return replies.serviceUnavailable();
    }
  }

  private async execute(step: Step): Promise<string> {
    const { backplane } = this.context;
    if (step.kind === 'disconnect') {
      await this.disconnect();
      return '';
    }
    if (step.kind === 'login') {
      if (this.me) return replies.alreadyLoggedIn(this.me.user);
      const member: Member = { connectionId: this.id, user: step.user };
      if ((await backplane.login(member)) === 'taken') return replies.nameTaken(step.user);
      this.me = member;
      return replies.ok();
    }
    const me = this.me;
    if (!me) return replies.notLoggedIn();
    switch (step.kind) {
      case 'logout':
        await backplane.logout(me);
        this.forgetLogin();
        return replies.ok();
      case 'join': {
        const result = await backplane.join(me, step.room);
        if (result === 'already-joined') return replies.alreadyJoined(me.user, step.room);
        if (result === 'too-many-rooms') return replies.tooManyRooms();
        this.rooms.set(nameKey(step.room), step.room);
        return replies.ok();
      }
      case 'part': {
        const result = await backplane.part(me, step.room);
        this.rooms.delete(nameKey(step.room));
        return result === 'ok' ? replies.ok() : replies.notInRoom(me.user, step.room);
      }
      case 'roomMessage': {
        const result = await backplane.sendToRoom(me, step.room, step.text);
        if (result === 'not-available') return replies.roomNotAvailable(step.room);
        // The sender's own copy rides with its OK, so the OK is always first.
        return replies.ok() + replies.roomMessage(me.user, result.roomName, step.text);
      }
      case 'userMessage':
        if (nameKey(step.user) === nameKey(me.user)) return replies.ok() + replies.userMessage(me.user, step.text);
        return (await backplane.sendToUser(me, step.user, step.text)) === 'ok'
          ? replies.ok()
          : replies.userNotFound(step.user);
    }
  }

  private async disconnect(): Promise<void> {
    const me = this.forgetLogin();
    try {
      if (me) await this.context.backplane.logout(me);
    } finally {
      this.finish();
    }
  }

  /** Drops what this session holds locally; returns who it was. */
  private forgetLogin(): Member | undefined {
    const me = this.me;
    this.me = undefined;
    this.rooms.clear();
    return me;
  }

  private write(text: string | Uint8Array): void {
    if (!this.socket.writable || text.length === 0) return;
    // One write per connection per event-loop turn, however many lines it got meanwhile.
    if (this.output.length === 0) process.nextTick(this.flushOutput);
    this.output.push(text);
  }

  private readonly flushOutput = (): void => {
    const output = this.output;
    if (output.length === 0) return;
    this.output = [];
    if (!this.socket.writable) return;
    this.socket.write(output.length === 1 ? output[0]! : joined(output));
    if (this.socket.writableLength > this.context.limits.maxPendingBytes) {
      this.context.log.info({ connection: this.id, user: this.me?.user, pendingBytes: this.socket.writableLength },
        'closing a client that does not read');
      this.socket.destroy();
    }
  };

  private onClose(): void {
    // Commands already received still run (a client may send and hang up at once), then the
    // implicit LOGOUT.
    this.enqueue({ kind: 'disconnect' });
  }
}

/** Lines as one chunk: one string when all are text, else the bytes of each in order. */
function joined(output: (string | Uint8Array)[]): string | Uint8Array {
  if (output.every((chunk) => typeof chunk === 'string')) return output.join('');
  return Buffer.concat(output.map((chunk) => (typeof chunk === 'string' ? Buffer.from(chunk) : chunk)));
}
