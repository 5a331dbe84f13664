import type { Socket } from 'node:net';
import { isUnavailable } from './backplane/errors.js';
import type { Backplane, ClientHandle, Member } from './backplane/types.js';
import { COMMAND_BY_KEYWORD, type CommandContext, type CommandSpec, GRAMMAR } from './commands.js';
import type { Config } from './config.js';
import type { InputBudget } from './input-budget.js';
import type { Logger } from './log.js';
import { type CloseReason, type CommandResult, metrics, recordCommand } from './metrics.js';
import { type Frame, LineFramer } from './protocol/framer.js';
import type { Arguments } from './protocol/parser.js';
import { parseLine } from './protocol/parser.js';
import { replies } from './protocol/replies.js';
import { TokenBucket } from './rate-limit.js';

// One client connection: framer → parser → command table → backplane → replies → socket.
//
// Replies leave in command order, but commands need not run one at a time: a command that only
// reads or delivers runs concurrently with its neighbours (the backplane keeps their effects in
// order). A barrier (see CommandSpec) starts after everything before it finished and finishes
// before anything after it starts. The implicit LOGOUT at close is a barrier too.

export type SessionLimits = Pick<Config,
  'maxLineBytes' | 'maxPendingBytes' | 'ratePerSec' | 'rateBurst' | 'rateLimitStrikes'>;

export interface SessionContext {
  backplane: Backplane;
  log: Logger;
  limits: SessionLimits;
  /** Commands read but not yet answered, across the worker. */
  input: InputBudget;
}

/** A reply's place in the output order; filled in when its command finishes. */
interface ReplySlot {
  text: string | undefined;
  /** The connection ends once this reply is written (QUIT). */
  closeAfter?: boolean;
}

interface Step {
  spec: CommandSpec | 'disconnect';
  args: Arguments | undefined;
  slot: ReplySlot;
  readAt: number;
  bytes: number;
}

// Read no more from a client with this many commands, or this many bytes of commands, still
// unanswered: bounds the memory a client that pipelines without reading can make us hold.
const MAX_UNANSWERED = 256;
const MAX_UNANSWERED_BYTES = 64 * 1024;
const COMMAND_OVERHEAD_BYTES = 64;
// WHO and ROOMS read many keys: a person may type them often, a script may not.
const LISTING_BURST = 5;
const LISTING_PER_SEC = 1;
// A client told to go gets this long to read its last line before the connection is cut.
const CLOSE_GRACE_MS = 2000;

export class Session implements ClientHandle {
  private readonly framer: LineFramer;
  private readonly allowance: TokenBucket;
  private readonly listingAllowance: TokenBucket;
  /** Refusals the client may still collect before it is disconnected; refilled one per second. */
  private readonly strikes: TokenBucket;
  private me: Member | undefined;
  private readonly replySlots: ReplySlot[] = [];
  private readonly waiting: Step[] = [];
  /** Frames read but not yet taken on, while the session is at its unanswered limit. */
  private backlog: Frame[] = [];
  private unansweredBytes = 0;
  private barrierRunning = false;
  private running = 0;
  /** What this turn wrote to the client, sent as one write when the turn ends. */
  private output: (string | Uint8Array)[] = [];
  private paused = false;
  /** No more commands are taken: QUIT, a limit, or shutdown. */
  private closing = false;
  /** No more input will come (the socket closed, or we close it); what came before still runs, then the implicit LOGOUT. */
  private inputEnded = false;
  private disconnectQueued = false;
  /** QUIT ran: the connection ends once its reply is written. */
  private quitting = false;
  private closeReason: CloseReason = 'client';
  /** performance.now() of the last complete command, and of the moment the session last had no login. */
  lastCommandAt = performance.now();
  loggedOutSince: number | undefined = performance.now();
  /** Resolves once the connection is closed and its user logged out. */
  readonly finished: Promise<void>;
  private readonly log: Logger;
  private finish!: () => void;

  constructor(
    readonly id: string,
    private readonly socket: Socket,
    private readonly context: SessionContext,
  ) {
    const { limits } = context;
    this.framer = new LineFramer(limits.maxLineBytes);
    this.allowance = new TokenBucket(limits.ratePerSec, limits.rateBurst);
    this.listingAllowance = new TokenBucket(LISTING_PER_SEC, LISTING_BURST);
    this.strikes = new TokenBucket(limits.ratePerSec === 0 ? 0 : 1, limits.rateLimitStrikes);
    this.finished = new Promise((resolve) => { this.finish = resolve; });
    this.log = context.log.child({ connection: id });
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.receive(chunk));
    socket.on('error', (error) => context.log.debug({ connection: id, err: error }, 'socket error'));
    socket.on('close', () => this.onClose());
  }

  get user(): string | undefined {
    return this.me?.user;
  }

  /** Bytes written to the socket and not yet sent. */
  get pendingBytes(): number {
    return this.socket.writableLength;
  }

  /** Told to go (QUIT, a limit, shutdown): its output no longer counts as a backlog to shed. */
  get isClosing(): boolean {
    return this.closing;
  }

  get reasonForClose(): CloseReason {
    return this.closeReason;
  }

  // ClientHandle: what the backplane does to this session.

  deliver(lines: string | Uint8Array): void {
    metrics.deliveriesWritten.inc(countLines(lines));
    this.write(lines);
  }

  nameLost(): void {
    const me = this.me;
    if (!me) return;
    this.forgetLogin();
    this.context.log.warn({ connection: this.id, user: me.user }, 'session lost its name to another login after a fault');
    this.write(replies.nameTaken(me.user));
  }

  rebound(member: Member): void {
    this.me = member;
  }

  /** Sends one last line and closes; the usual cleanup (logout) follows. */
  closeWith(line: string, reason: CloseReason): void {
    if (this.closing && this.socket.writableEnded) return;
    this.closeReason = reason;
    this.stopTakingCommands();
    this.write(line);
    this.endConnection();
  }

  /** Sends what is written, ends the connection, and logs out now. */
  private endConnection(): void {
    this.flushOutput();
    this.socket.end();
    // Logged out now, not when the socket is gone: a client that does not read would keep it
    // open (and its name taken) for the whole grace period.
    this.endOfInput();
    // A client that does not read would keep the socket (and its backlog) open forever.
    setTimeout(() => this.socket.destroy(), CLOSE_GRACE_MS).unref();
  }

  private receive(chunk: Buffer): void {
    const frames = this.framer.push(chunk);
    if (this.backlog.length > 0) this.backlog.push(...frames);
    else this.backlog = frames;
    this.takeFrames();
  }

  /** Takes frames on while the session and the worker have room for more unanswered commands. */
  private takeFrames(): void {
    let taken = 0;
    // Frames taken on together were read together: one clock reading serves them all.
    const now = performance.now();
    while (taken < this.backlog.length && !this.closing && !this.atOwnLimit() && this.context.input.hasRoom()) {
      this.takeFrame(this.backlog[taken++]!, now);
    }
    this.backlog = this.closing || taken === this.backlog.length ? [] : this.backlog.slice(taken);
    if (this.backlog.length > 0) {
      if (this.paused) return;
      this.paused = true;
      this.socket.pause();
      // Our own replies wake us (flushReplies); when the worker is the limit, so does it.
      if (!this.atOwnLimit()) this.context.input.waitForRoom(this.resumeReading);
    } else if (this.inputEnded && !this.disconnectQueued) {
      // Every command the client sent before it hung up has been taken on: now the implicit LOGOUT.
      this.disconnectQueued = true;
      this.enqueue('disconnect', undefined);
    }
  }

  private atOwnLimit(): boolean {
    return this.replySlots.length >= MAX_UNANSWERED || this.unansweredBytes >= MAX_UNANSWERED_BYTES;
  }

  private readonly resumeReading = (): void => {
    if (!this.paused) return;
    if (this.replySlots.length > MAX_UNANSWERED / 2 || this.unansweredBytes > MAX_UNANSWERED_BYTES / 2) return;
    this.paused = false;
    this.takeFrames();
    if (!this.paused && !this.inputEnded) this.socket.resume();
  };

  private takeFrame(frame: Frame, now: number): void {
    if (!this.allowance.take(now)) {
      metrics.rateLimited.inc();
      // A client that keeps sending into the limit gets a bounded number of refusals: the last
      // one ends the connection, once the replies before it are written.
      if (this.strikes.take()) return this.answerAtOnce(replies.rateLimited());
      this.closeReason = 'rate_abuse';
      this.stopTakingCommands();
      this.replySlots.push({ text: replies.rateLimited(), closeAfter: true });
      return this.flushReplies();
    }
    this.lastCommandAt = now;
    if ('error' in frame) return this.answerAtOnce(replies.error(frame.error));
    const parsed = parseLine(frame.line, GRAMMAR);
    if ('error' in parsed) {
      recordCommand('INVALID', 'error', 0);
      return this.answerAtOnce(replies.error(parsed.error));
    }
    const spec = COMMAND_BY_KEYWORD.get(parsed.keyword)!;
    if (spec.listing && !this.listingAllowance.take(now)) {
      metrics.rateLimited.inc();
      return this.answerAtOnce(replies.rateLimited());
    }
    // Counted at least at the size of what a queued command costs us besides its text.
    this.enqueue(spec, parsed.args, Math.max(COMMAND_OVERHEAD_BYTES, Buffer.byteLength(frame.line)));
  }

  private answerAtOnce(text: string): void {
    this.replySlots.push({ text });
    this.flushReplies();
  }

  private enqueue(spec: CommandSpec | 'disconnect', args: Arguments | undefined, bytes = 0): void {
    const slot: ReplySlot = { text: undefined };
    this.replySlots.push(slot);
    this.unansweredBytes += bytes;
    this.context.input.take(bytes);
    // Read when its frame was taken (a disconnect is not timed).
    this.waiting.push({ spec, args, slot, readAt: this.lastCommandAt, bytes });
    this.dispatch();
  }

  private dispatch(): void {
    while (!this.barrierRunning && this.waiting.length > 0) {
      const next = this.waiting[0]!;
      const barrier = next.spec === 'disconnect' || next.spec.barrier;
      // A barrier also waits for the concurrent commands before it to finish.
      if (barrier && this.running > 0) return;
      this.waiting.shift();
      if (barrier) this.barrierRunning = true;
      this.running++;
      this.run(next);
    }
  }

  /** A command's reply is ready: it takes its place in the output, and what waited on it may start. */
  private completed(step: Step, text: string): void {
    const barrier = step.spec === 'disconnect' || step.spec.barrier;
    this.running--;
    step.slot.text = text;
    // QUIT is a barrier, so nothing else ran meanwhile that could have set the flag.
    if (this.quitting && barrier) step.slot.closeAfter = true;
    this.unansweredBytes -= step.bytes;
    this.context.input.give(step.bytes);
    if (barrier) this.barrierRunning = false;
    this.dispatch();
    this.flushReplies();
  }

  /**
   * Runs a command and completes it with its reply; never fails. A chain rather than an async
   * function: every DM passes here, and each async layer costs it one more promise to make and
   * to collect.
   */
  private run(step: Step): void {
    if (step.spec === 'disconnect') {
      void this.disconnect().then(() => this.completed(step, ''));
      return;
    }
    const { spec } = step;
    if (spec.needsLogin && !this.me) return this.completed(step, this.answered(step, spec, replies.notLoggedIn()));
    let reply: Promise<string> | string;
    try {
      reply = spec.run(this.commandContext, step.args as never);
    } catch (error) {
      return this.completed(step, this.failed(step, spec, error));
    }
    if (typeof reply === 'string') return this.completed(step, this.answered(step, spec, reply));
    void reply.then(
      (text) => this.completed(step, this.answered(step, spec, text)),
      (error: unknown) => this.completed(step, this.failed(step, spec, error)),
    );
  }

  private answered(step: Step, spec: CommandSpec, reply: string): string {
    recordCommand(spec.keyword, reply.startsWith('ERROR ') ? 'error' : 'ok', (performance.now() - step.readAt) / 1000);
    return reply;
  }

  /**
   * One policy: the shared state being away is expected and answered as such (the outage is
   * logged once, by the backplane); anything else is a bug, and looks like one.
   */
  private failed(step: Step, spec: CommandSpec, error: unknown): string {
    let result: CommandResult;
    let reply: string;
    if (isUnavailable(error)) {
      result = 'unavailable';
      reply = replies.serviceUnavailable();
    } else {
      result = 'internal_error';
      reply = replies.internalError();
      metrics.internalErrors.inc();
      this.context.log.error({ connection: this.id, command: spec.keyword, err: error }, 'command failed with an unexpected error');
    }
    recordCommand(spec.keyword, result, (performance.now() - step.readAt) / 1000);
    return reply;
  }

  private readonly commandContext: CommandContext = (() => {
    const session = this;
    return {
      get backplane() { return session.context.backplane; },
      get log() { return session.log; },
      get me() { return session.me; },
      client: session,
      loggedIn(member: Member) {
        session.me = member;
        session.loggedOutSince = undefined;
        session.log.debug({ user: member.user, login: member.loginId }, 'logged in');
      },
      loggedOut() {
        const me = session.forgetLogin();
        if (me) session.log.debug({ user: me.user }, 'logged out');
      },
      closeAfterReply() {
        session.closeReason = 'quit';
        session.quitting = true;
        session.stopTakingCommands();
        session.dropQueuedCommands();
      },
    };
  })();

  private stopTakingCommands(): void {
    this.closing = true;
    this.backlog = [];
  }

  /**
   * QUIT ran: the commands read after it, queued while it waited for the ones before it, are
   * not run (the client asked to go first); their replies would not be written anyway. The
   * implicit LOGOUT, if the client already hung up, still runs.
   */
  private dropQueuedCommands(): void {
    const kept: Step[] = [];
    for (const step of this.waiting) {
      if (step.spec === 'disconnect') {
        kept.push(step);
        continue;
      }
      step.slot.text = '';
      this.unansweredBytes -= step.bytes;
      this.context.input.give(step.bytes);
    }
    this.waiting.splice(0, this.waiting.length, ...kept);
  }

  private flushReplies(): void {
    while (this.replySlots.length > 0 && this.replySlots[0]!.text !== undefined) {
      const slot = this.replySlots.shift()!;
      this.write(slot.text!);
      if (slot.closeAfter) this.endConnection();
    }
    if (this.paused) this.resumeReading();
  }

  private async disconnect(): Promise<void> {
    const me = this.forgetLogin();
    if (me) this.log.debug({ user: me.user }, 'logged out: connection closed');
    try {
      if (me) await this.context.backplane.logout(me);
    } catch (error) {
      // logout() promises never to fail; if it did, that is a bug, never a crashed worker.
      metrics.internalErrors.inc();
      this.log.error({ user: me?.user, err: error }, 'logout after the connection closed failed');
    } finally {
      this.finish();
    }
  }

  /** Drops the login locally; returns who it was. */
  private forgetLogin(): Member | undefined {
    const me = this.me;
    this.me = undefined;
    this.loggedOutSince ??= performance.now();
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
    if (this.socket.writableLength > this.context.limits.maxPendingBytes && !this.closing) {
      this.context.log.info({ connection: this.id, user: this.me?.user, pendingBytes: this.socket.writableLength },
        'closing a client that does not read');
      this.closeWith(replies.tooMuchPendingOutput(), 'slow_reader');
    }
  };

  private onClose(): void {
    this.endOfInput();
  }

  /**
   * Commands the client sent before it hung up still run (a client may send and close at once),
   * then the implicit LOGOUT: takeFrames queues it once the backlog is taken on.
   */
  private endOfInput(): void {
    if (this.inputEnded) return;
    this.inputEnded = true;
    if (!this.paused || this.closing) this.takeFrames();
  }
}

const LF = 0x0a;

/** Complete lines in what a delivery carries (one batch may carry a recipient's several). */
function countLines(lines: string | Uint8Array): number {
  let count = 0;
  if (typeof lines === 'string') {
    for (let at = lines.indexOf('\n'); at !== -1; at = lines.indexOf('\n', at + 1)) count++;
  } else {
    for (let at = lines.indexOf(LF); at !== -1; at = lines.indexOf(LF, at + 1)) count++;
  }
  return count;
}

/** Lines as one chunk: one string when all are text, else the bytes of each in order. */
function joined(output: (string | Uint8Array)[]): string | Uint8Array {
  if (output.every((chunk) => typeof chunk === 'string')) return output.join('');
  return Buffer.concat(output.map((chunk) => (typeof chunk === 'string' ? Buffer.from(chunk) : chunk)));
}
