import type { Redis } from 'ioredis';
import type { Logger } from '../../log.js';
import { nameKey } from '../../protocol/names.js';
import { replies } from '../../protocol/replies.js';
import type {
  Backplane, DeliverySink, JoinResult, LiveSession, LoginResult, Member, PartResult, RoomMessageResult,
  UserMessageResult,
} from '../types.js';
import { BackplaneUnavailableError } from '../types.js';
import { connectRedis } from './connection.js';
import { DirectMessageBatcher } from './direct-batch.js';
import { RedisKeys } from './keys.js';
import { type ChatScripts, loadScripts } from './scripts.js';

// The clustered backplane. State lives in Redis (see keys.ts); every check-then-act is one
// Lua script in one slot. Deliveries travel over one pub/sub channel per user: this worker
// subscribes to the channels of the users it holds, on one subscriber connection, and each
// message names the connection it is for, so nothing reaches a later session of the same name.
//
// Liveness: the worker heartbeats a key with a TTL and records every session it holds. Any
// worker that finds another's heartbeat gone claims its cleanup (exactly one does) and logs
// its sessions out. When Redis comes back (possibly empty), or this worker finds its own
// heartbeat gone, it reconciles: the shared state is made to match its live sessions again.

export interface RedisBackplaneOptions {
  url: string;
  prefix: string;
  workerId: string;
  maxRoomsPerUser: number;
  nodeTtlMs: number;
  deliver: DeliverySink;
  /** This worker's live sessions, for reconciling after Redis lost or kept stale state. */
  liveSessions: () => Iterable<LiveSession>;
  log: Logger;
}

interface Subscription {
  holders: number;
  ready: Promise<unknown>;
}

const SPACE = 0x20;

/** A worker's record of one session it holds: "<user key> <connection id>". */
const sessionEntry = (member: Member) => `${nameKey(member.user)} ${member.connectionId}`;

function memberOf(entry: string): Member {
  const [user, connectionId] = entry.split(' ') as [string, string];
  return { user, connectionId };
}

export class RedisBackplane implements Backplane {
  private readonly keys: RedisKeys;
  private readonly scripts: ChatScripts;
  private readonly directMessages: DirectMessageBatcher;
  private readonly subscriptions = new Map<string, Subscription>();
  /** Channels to subscribe to in the next batch, and that batch's outcome. */
  private subscribeBatch: string[] = [];
  private subscribeBatchDone: Promise<unknown> | undefined;
  private readonly timers: NodeJS.Timeout[] = [];
  /** Heartbeat period; the reaper looks every period too. */
  private readonly beatMs: number;
  /** How long the heartbeat key lives unless refreshed: three beats. */
  private readonly heartbeatTtlMs: number;
  private lastProbeAt = performance.now();
  /** Sessions between recording themselves and learning the outcome of their LOGIN. */
  private readonly loginsInFlight = new Set<string>();
  private reconciling: Promise<void> | undefined;
  private reconcileAgain = false;
  private closing = false;

  private constructor(
    private readonly commands: Redis,
    private readonly subscriber: Redis,
    private readonly options: RedisBackplaneOptions,
  ) {
    this.keys = new RedisKeys(options.prefix);
    this.scripts = loadScripts(commands);
    this.directMessages = new DirectMessageBatcher(this.scripts, this.keys);
    // Dead worker found within ~0.8 × NODE_TTL_MS: key TTL 0.6, reaper period 0.2.
    this.beatMs = Math.max(200, Math.floor(options.nodeTtlMs / 5));
    this.heartbeatTtlMs = this.beatMs * 3;
    const probeChannel = Buffer.from(this.keys.workerProbe(options.workerId));
    // A subscriber that just reconnected has had no chance to see a probe yet.
    subscriber.on('ready', () => { this.lastProbeAt = performance.now(); });
    // As bytes: the lines go to the sockets as they came, never decoded and encoded again.
    subscriber.on('messageBuffer', (channel: Buffer, message: Buffer) => {
      if (channel.equals(probeChannel)) {
        this.lastProbeAt = performance.now();
        return;
      }
      const space = message.indexOf(SPACE);
      // Copied: the parser may reuse the memory it handed us before a slow socket sends it.
      if (space > 0) options.deliver(message.toString('latin1', 0, space), Buffer.from(message.subarray(space + 1)));
    });
  }

  static async connect(options: RedisBackplaneOptions): Promise<RedisBackplane> {
    const commands = await connectRedis(options.url, `${options.workerId}:commands`, options.log);
    let subscriber: Redis | undefined;
    try {
      subscriber = await connectRedis(options.url, `${options.workerId}:deliveries`, options.log);
      const backplane = new RedisBackplane(commands, subscriber, options);
      await backplane.start();
      return backplane;
    } catch (error) {
      commands.disconnect();
      subscriber?.disconnect();
      throw error;
    }
  }

  private async start(): Promise<void> {
    const { workerId } = this.options;
    await this.subscriber.subscribe(this.keys.workerProbe(workerId));
    await this.register();
    this.lastProbeAt = performance.now();
    this.timers.push(setInterval(() => void this.beat(), this.beatMs));
    this.timers.push(setInterval(() => void this.reapDeadWorkers(), this.beatMs));
    for (const timer of this.timers) timer.unref();
    // Every reconnect after the first: Redis may have restarted empty, or lost our writes.
    this.commands.on('ready', () => this.reconcile('redis reconnected'));
  }

  private async register(): Promise<void> {
    const { workerId } = this.options;
    await Promise.all([
      this.commands.sadd(this.keys.workers(), workerId),
      this.commands.set(this.keys.workerAlive(workerId), workerId, 'PX', this.heartbeatTtlMs),
    ]);
  }

  async login(member: Member): Promise<LoginResult> {
    const channel = this.keys.userChannel(nameKey(member.user));
    // Subscribed first, so a message sent the instant after OK already has a way here.
    await this.hold(channel);
    let claimed = false;
    try {
      claimed = await this.claimName(member);
    } catch (error) {
      throw unavailable(error);
    } finally {
      if (!claimed) this.release(channel);
    }
    return claimed ? 'ok' : 'taken';
  }

  /**
   * Claims the name for this connection, recorded as this worker's before the claim so a crash
   * never hides a login from the reaper. Leaves no record when the name is taken.
   */
  private async claimName(member: Member): Promise<boolean> {
    const sessions = this.keys.workerSessions(this.options.workerId);
    const entry = sessionEntry(member);
    this.loginsInFlight.add(entry);
    try {
      // Back to back on one connection: Redis runs the record before the claim, in one round trip.
      const [, claimed] = await Promise.all([
        this.commands.sadd(sessions, entry),
        this.scripts.login(this.keys.user(nameKey(member.user)), member.user, this.options.workerId,
          member.connectionId, Date.now()),
      ]);
      if (claimed === 1) return true;
      await this.commands.srem(sessions, entry);
      return false;
    } finally {
      this.loginsInFlight.delete(entry);
    }
  }

  async logout(member: Member): Promise<void> {
    try {
      await this.releaseSession(member);
    } catch (error) {
      // The session's record stays in this worker's set, so a later reconcile finishes this.
      this.reconcileAgain = true;
      throw unavailable(error);
    } finally {
      this.release(this.keys.userChannel(nameKey(member.user)));
    }
  }

  /** Leaves every room, frees the name, forgets the session: the whole of a logout in Redis. */
  private async releaseSession(member: Member, workerId = this.options.workerId): Promise<void> {
    const userKey = nameKey(member.user);
    // Rooms first: if this stops half-way, the index still lists every room, so a later
    // cleanup finishes the job.
    const rooms = await this.commands.smembers(this.keys.userRooms(userKey));
    await Promise.all(rooms.map((roomKey) => this.scripts.partRoom(
      this.keys.roomMembers(roomKey), this.keys.roomName(roomKey), userKey, member.connectionId)));
    await this.scripts.logout(this.keys.user(userKey), this.keys.userRooms(userKey), member.connectionId);
    await this.commands.srem(this.keys.workerSessions(workerId), sessionEntry(member));
  }

  join(member: Member, room: string): Promise<JoinResult> {
    return orUnavailable(this.joinRoom(member, room));
  }

  private async joinRoom(member: Member, room: string): Promise<JoinResult> {
    const userKey = nameKey(member.user);
    const roomKey = nameKey(room);
    const reserved = await this.scripts.reserveRoom(
      this.keys.user(userKey), this.keys.userRooms(userKey), member.connectionId, roomKey,
      this.options.maxRoomsPerUser);
    if (reserved === 0) return 'too-many-rooms';
    if (reserved === -1) throw new Error(`connection ${member.connectionId} no longer holds ${userKey}`);
    const joined = await this.scripts.joinRoom(
      this.keys.roomMembers(roomKey), this.keys.roomName(roomKey), userKey, member.connectionId, room);
    return joined === 1 ? 'ok' : 'already-joined';
  }

  part(member: Member, room: string): Promise<PartResult> {
    return orUnavailable(this.partRoom(member, room));
  }

  private async partRoom(member: Member, room: string): Promise<PartResult> {
    const userKey = nameKey(member.user);
    const roomKey = nameKey(room);
    // Sent back to back: the index entry goes even when the membership was already gone.
    const [left] = await Promise.all([
      this.scripts.partRoom(this.keys.roomMembers(roomKey), this.keys.roomName(roomKey), userKey, member.connectionId),
      this.scripts.unindexRoom(this.keys.user(userKey), this.keys.userRooms(userKey), member.connectionId, roomKey),
    ]);
    return left === 1 ? 'ok' : 'not-in-room';
  }

  async sendToRoom(sender: Member, room: string, text: string): Promise<RoomMessageResult> {
    // DMs accepted before this message must reach Redis before it: a recipient may be in the room.
    this.directMessages.flush();
    const roomKey = nameKey(room);
    const [lineBefore, lineAfter] = replies.roomMessageAround(sender.user, text);
    const [channelBefore, channelAfter] = this.keys.userChannelAround();
    const roomName = await orUnavailable(this.scripts.sendToRoom(
      this.keys.roomMembers(roomKey), this.keys.roomName(roomKey), nameKey(sender.user), sender.connectionId,
      lineBefore, lineAfter, channelBefore, channelAfter, room));
    return roomName === null ? 'not-available' : { roomName };
  }

  async sendToUser(sender: Member, user: string, text: string): Promise<UserMessageResult> {
    const delivered = await orUnavailable(this.directMessages.send(nameKey(user), replies.userMessage(sender.user, text)));
    return delivered ? 'ok' : 'not-found';
  }

  /** Both connections up, and the subscriber proven to deliver within the last three beats. */
  isHealthy(): boolean {
    return this.commands.status === 'ready' && this.subscriber.status === 'ready' && !this.subscriberSilent();
  }

  /** No probe came back through the subscriber for three beats. */
  private subscriberSilent(): boolean {
    return performance.now() - this.lastProbeAt > this.beatMs * 3;
  }

  /** Leaves the cluster cleanly; call after every session logged out. */
  async close(): Promise<void> {
    this.closing = true;
    for (const timer of this.timers) clearInterval(timer);
    const { workerId } = this.options;
    await Promise.allSettled([
      this.commands.del(this.keys.workerAlive(workerId)),
      this.commands.srem(this.keys.workers(), workerId),
    ]);
    await Promise.allSettled([this.commands.quit(), this.subscriber.quit()]);
  }

  /** Refreshes the heartbeat and probes the subscriber; reconciles if we were taken for dead. */
  private async beat(): Promise<void> {
    const { workerId } = this.options;
    try {
      const refreshed = await this.commands.set(this.keys.workerAlive(workerId), workerId, 'PX', this.heartbeatTtlMs, 'XX');
      await this.commands.publish(this.keys.workerProbe(workerId), 'probe');
      if (refreshed === null) this.reconcile('heartbeat was gone');
      else if (this.reconcileAgain) this.reconcile('an earlier cleanup failed');
    } catch {
      // Redis is away; the reconnect triggers the reconcile.
    }
    if (this.subscriber.status === 'ready' && this.subscriberSilent()) {
      // Connected but silent: a subscriber that no longer delivers. Reconnecting resubscribes.
      this.options.log.warn({ silentMs: Math.round(performance.now() - this.lastProbeAt) },
        'subscriber stopped delivering probes; reconnecting it');
      this.lastProbeAt = performance.now();
      this.subscriber.disconnect(true);
    }
  }

  /**
   * Makes Redis hold exactly this worker's live sessions: releases recorded sessions that are
   * gone, and re-registers live ones with their rooms. A live session whose name another
   * connection took meanwhile loses it (whoever registered first keeps a name).
   */
  private reconcile(reason: string): void {
    if (this.closing) return;
    if (this.reconciling) {
      this.reconcileAgain = true;
      return;
    }
    this.reconcileAgain = false;
    this.reconciling = this.restore(reason)
      .catch((error) => {
        this.reconcileAgain = true;
        this.options.log.warn({ err: error, reason }, 'reconcile failed; will retry');
      })
      .finally(() => { this.reconciling = undefined; });
  }

  private async restore(reason: string): Promise<void> {
    const { workerId, log } = this.options;
    // As at LOGIN: deliveries need a way here before names are claimed again.
    await this.subscriptionsRestored();
    await this.register();
    const live = new Map<string, { session: LiveSession; member: Member; rooms: string[] }>();
    for (const session of this.options.liveSessions()) {
      const standing = session.standing;
      if (standing) live.set(sessionEntry(standing.member), { session, ...standing });
    }
    const recorded = await this.commands.smembers(this.keys.workerSessions(workerId));
    // A login still in flight is recorded but not yet live: it is neither gone nor restorable.
    const gone = recorded.filter((entry) => !live.has(entry) && !this.loginsInFlight.has(entry));
    await Promise.all(gone.map((entry) => this.releaseSession(memberOf(entry))));
    let lost = 0;
    await Promise.all([...live.values()].map(async ({ session, member, rooms }) => {
      // The session still holds its channel, resubscribed above; only the name is claimed again.
      if (!(await this.claimName(member))) {
        lost++;
        session.loseName();
        this.release(this.keys.userChannel(nameKey(member.user)));
        return;
      }
      await Promise.all(rooms.map((room) => this.joinRoom(member, room)));
      // The session may have logged out or parted while we re-registered it: undo that part.
      const now = session.standing;
      if (now?.member !== member) await this.releaseSession(member);
      else await Promise.all(rooms.filter((room) => !now.rooms.includes(room)).map((room) => this.partRoom(member, room)));
    }));
    log.info({ reason, restored: live.size - lost, lost, released: gone.length }, 'reconciled shared state');
  }

  /**
   * Resolves once the subscriber is connected and has resubscribed every channel: ioredis
   * resubscribes as it turns ready, so one more SUBSCRIBE answered means those were too.
   */
  private async subscriptionsRestored(): Promise<void> {
    if (this.subscriber.status !== 'ready') {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => {
          this.subscriber.off('ready', onReady);
          reject(new Error('subscriber not back yet'));
        }, this.beatMs * 5);
        const onReady = () => {
          clearTimeout(timer);
          resolve();
        };
        this.subscriber.once('ready', onReady);
      });
    }
    await this.subscriber.subscribe(this.keys.workerProbe(this.options.workerId));
  }

  /** Cleans up after workers whose heartbeat expired; one worker does each, exactly once. */
  private async reapDeadWorkers(): Promise<void> {
    const { workerId, log } = this.options;
    try {
      for (const other of await this.commands.smembers(this.keys.workers())) {
        if (other === workerId) continue;
        const claimed = await this.scripts.claimReaping(
          this.keys.workerAlive(other), this.keys.workerReaper(other), workerId, this.beatMs * 10);
        if (claimed === 0) continue;
        const entries = await this.commands.smembers(this.keys.workerSessions(other));
        await Promise.all(entries.map((entry) => this.releaseSession(memberOf(entry), other)));
        await this.commands.srem(this.keys.workers(), other);
        await this.commands.del(this.keys.workerSessions(other), this.keys.workerReaper(other));
        log.info({ deadWorker: other, released: entries.length }, 'released the sessions of a dead worker');
      }
    } catch (error) {
      log.debug({ err: error }, 'reaper pass failed; the next one retries');
    }
  }

  /** Subscribes to a channel for one more holder; resolves once Redis confirmed it. */
  private async hold(channel: string): Promise<void> {
    let subscription = this.subscriptions.get(channel);
    if (!subscription) {
      subscription = { holders: 0, ready: this.subscribeSoon(channel) };
      this.subscriptions.set(channel, subscription);
    }
    subscription.holders++;
    try {
      await subscription.ready;
    } catch (error) {
      this.release(channel);
      throw unavailable(error);
    }
  }

  /**
   * ioredis does not pipeline SUBSCRIBE, so logins arriving together would each wait for a
   * write and a round trip of their own: one SUBSCRIBE per event-loop turn carries them all.
   */
  private subscribeSoon(channel: string): Promise<unknown> {
    this.subscribeBatch.push(channel);
    this.subscribeBatchDone ??= new Promise((resolve) => setImmediate(resolve)).then(() => {
      const channels = this.subscribeBatch;
      this.subscribeBatch = [];
      this.subscribeBatchDone = undefined;
      return this.subscriber.subscribe(...channels);
    });
    return this.subscribeBatchDone;
  }

  private release(channel: string): void {
    const subscription = this.subscriptions.get(channel);
    if (!subscription || --subscription.holders > 0) return;
    this.subscriptions.delete(channel);
    // Best effort: while Redis is away the subscription is gone with the connection anyway.
    this.subscriber.unsubscribe(channel).catch(() => {});
  }
}

function unavailable(error: unknown): BackplaneUnavailableError {
  return error instanceof BackplaneUnavailableError ? error : new BackplaneUnavailableError(error);
}

/** Any Redis failure of this step is, to the caller, the shared state being unavailable. */
function orUnavailable<T>(step: Promise<T>): Promise<T> {
  return step.catch((error: unknown) => {
    throw unavailable(error);
  });
}
