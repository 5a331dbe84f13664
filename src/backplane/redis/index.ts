import type { Redis } from 'ioredis';
import type { RedisSettings } from '../../config.js';
import type { Logger } from '../../log.js';
import { metrics } from '../../metrics.js';
import { nameKey } from '../../protocol/names.js';
import { replies } from '../../protocol/replies.js';
import { BackplaneUnavailableError, isUnavailable } from '../errors.js';
import { type LocalLogin, LocalLogins } from '../local-logins.js';
import type {
  Backplane, BackplaneStatus, ClientHandle, JoinResult, LoginResult, Member, PartResult, RoomListing, RoomMembersResult,
  RoomMessageResult, UserMessageResult,
} from '../types.js';
import {
  asBackplaneError, connectPatiently, createRedisClient, type RedisClient, requireNoEviction, watchConnection,
} from './client.js';
import { type DirectOutcome, DirectMessageBatcher } from './direct-batch.js';
import { channelKind, RedisKeys, ROOM_SHARDS } from './keys.js';
import { CommandGate } from './gate.js';
import { Lease, leaseTiming } from './lease.js';
import { mintedBy, mintLoginId, newWorkerId } from './login-ids.js';
import { OutageLog } from './outage.js';
import { ProbeWatch } from './probe-watch.js';
import { Reaper } from './reaper.js';
import { Reconciler } from './reconcile.js';
import { COMMAND_BUDGET_MS, REPLY_WAIT_MS, awaitReply } from './reply-wait.js';
import { RoomFeeds } from './room-feeds.js';
import { type ChatScripts, EXPIRED, loadScripts } from './scripts.js';
import { SenderTurns } from './sender-turns.js';
import { SharedState } from './shared-state.js';
import { Subscriptions } from './subscriptions.js';
import { TurnWrites } from './turn-writes.js';

// The clustered backplane. State lives in Redis (keys.ts); every check-then-act is one Lua
// script in one slot (scripts/), multi-slot sequences are in shared-state.ts. Deliveries travel
// over pub/sub: one inbox channel per user, subscribed by the worker holding it, and (on one
// primary) one feed per room. What each module keeps:
//   lease.ts          the heartbeat, and whether this worker may act now (fencing)
//   login-ids.ts      worker ids, and the login ids each worker mints
//   gate.ts           admitting commands only while it may, in order
//   reply-wait.ts     why an error answer means "no effect"
//   subscriptions.ts  the delivery connection's channels, made again when it is lost
//   probe-watch.ts    whether that connection still delivers
//   room-feeds.ts     room delivery on one primary: who is a member, message by message
//   sender-turns.ts   per-sender order on Redis Cluster
//   direct-batch.ts   a turn's DMs as one script call
//   reconcile.ts      making Redis match this worker's live logins after any fault
//   reaper.ts         releasing the sessions of workers that died
// This file implements the Backplane interface on top of them and decides when to repair.

export interface RedisBackplaneOptions {
  redis: RedisSettings;
  maxRoomsPerUser: number;
  maxRoomMembers: number;
  nodeTtlMs: number;
  log: Logger;
}

/** Redis Cluster: a room and its members (member key, login id) as of one instant. */
interface RoomMembers {
  roomName: string;
  members: [memberKey: string, loginId: string][];
}

const SPACE = 0x20;
/** A subscriber connected this many beats without seeing its own probe has stopped delivering. */
const SILENT_BEATS = 3;
/** Keys read per HSCAN step of WHO: bounded work per step for Redis, however big the room. */
const WHO_SCAN_COUNT = 1000;

export class RedisBackplane implements Backplane {
  private readonly logins = new LocalLogins();
  private readonly keys: RedisKeys;
  private readonly scripts: ChatScripts;
  private readonly state: SharedState;
  private readonly lease: Lease;
  private readonly subscriptions: Subscriptions;
  private readonly feeds: RoomFeeds | undefined;
  private readonly directs: DirectMessageBatcher;
  /** One Redis primary: the room messages written in one stretch of work leave as one write. */
  private readonly roomWrites: TurnWrites | undefined;
  private readonly reconciler: Reconciler;
  private readonly reaper: Reaper;
  private readonly outage: OutageLog;
  private readonly publish: 'PUBLISH' | 'SPUBLISH';
  private workerId = newWorkerId();
  private loginCount = 0;
  private readonly gate: CommandGate;
  /** Redis Cluster only: one sender's deliveries one after another. */
  private readonly senderTurns: SenderTurns | undefined;
  private restoring = false;
  /** A reconcile to run at the next successful heartbeat. */
  private pendingRepair: { reason: string; renew: boolean } | undefined;
  private readonly probes: ProbeWatch;
  private closing = false;
  private closed: Promise<void> | undefined;

  private constructor(
    private readonly commands: RedisClient,
    private readonly subscriber: RedisClient,
    private readonly options: RedisBackplaneOptions,
  ) {
    const { log, redis } = options;
    const sharded = redis.topology.kind === 'cluster';
    this.publish = sharded ? 'SPUBLISH' : 'PUBLISH';
    this.senderTurns = sharded ? new SenderTurns() : undefined;
    this.keys = new RedisKeys(redis.prefix);
    this.scripts = loadScripts(commands);
    this.state = new SharedState(commands, this.scripts, this.keys, {
      publish: this.publish, feeds: !sharded, oneConnection: !sharded,
      maxRoomsPerUser: options.maxRoomsPerUser, maxRoomMembers: options.maxRoomMembers,
    });
    this.outage = new OutageLog(log);
    // Open while this worker may act: its lease holds and no reconcile is under way.
    this.gate = new CommandGate(() => this.lease.valid() && !this.restoring,
      () => (this.restoring ? 'unreachable' : 'lease'), REPLY_WAIT_MS);
    const timing = leaseTiming(options.nodeTtlMs);
    this.probes = new ProbeWatch(SILENT_BEATS * timing.beatMs);
    this.lease = new Lease(
      (mode) => this.scripts.heartbeat(this.keys.workerAlive(this.workerId), this.workerId, timing.keyTtlMs,
        this.keys.workerProbe(this.workerId), this.publish, mode),
      timing,
      {
        lost: () => this.repair('heartbeat key was gone', true),
        unanswered: () => {
          log.warn('heartbeats get no answer on a connection that looks up; reconnecting it');
          this.commands.disconnect(true);
        },
        renewed: (sentAt) => this.onRenewed(sentAt),
      },
      log,
    );
    this.subscriptions = new Subscriptions(subscriber, sharded, {
      message: (channel, message) => this.onMessage(channel, message),
      resubscribed: () => this.feeds?.resubscribed(),
    }, log);
    this.feeds = sharded ? undefined : new RoomFeeds(this.keys, this.subscriptions, this.logins);
    // Redis Cluster spreads a room's publishes over several connections, one per node.
    this.roomWrites = sharded ? undefined : new TurnWrites(() => (commands as Redis).stream);
    this.directs = new DirectMessageBatcher(this.scripts, this.keys, {
      checkSenders: !sharded, publish: this.publish, deadline: () => this.deadline(),
    });
    this.reconciler = new Reconciler({
      state: this.state, logins: this.logins, feeds: this.feeds, subscriptions: this.subscriptions, log,
      workerId: () => this.workerId,
      mintLoginId: () => this.mintLoginId(),
      renewIdentity: () => this.renewIdentity(),
      deadline: () => this.deadline(),
      nameLost: (login) => this.endLogin(login, true),
    });
    this.reaper = new Reaper(this.state, () => this.workerId, timing.beatMs, log);
    subscriber.on('ready', () => this.probes.connected());
    commands.on('ready', () => {
      // Redis may have restarted empty, failed over and lost writes, or kept everything: the
      // next heartbeat tells which, and a reconcile (renewing if the key was gone) follows.
      this.pendingRepair ??= { reason: 'redis reconnected', renew: false };
      void this.lease.beat();
    });
    // A cluster's failover may lose writes a primary acknowledged: the same repair as a restart,
    // at once, so that a session whose name was lost with them stops speaking in it soon (on
    // Cluster, DMs do not check their sender's name). If nodes are still away, it is retried
    // after the next heartbeat, and commands to the slots that are up go on meanwhile.
    commands.on('-node', () => this.repair('a cluster node went away', false));
  }

  /** Connects (waiting for Redis as long as it takes), checks Redis' policy, and joins the cluster. */
  static async connect(options: RedisBackplaneOptions): Promise<RedisBackplane> {
    const { redis, log } = options;
    const workerTag = newWorkerId();
    const commands = createRedisClient(redis, 'commands', workerTag);
    const subscriber = createRedisClient(redis, 'deliveries', workerTag);
    watchConnection(commands, 'commands', log);
    watchConnection(subscriber, 'deliveries', log);
    try {
      await Promise.all([connectPatiently(commands, redis, 'commands', log), connectPatiently(subscriber, redis, 'deliveries', log)]);
      await requireNoEviction(commands, log);
      const backplane = new RedisBackplane(commands, subscriber, options);
      await backplane.start();
      return backplane;
    } catch (error) {
      commands.disconnect();
      subscriber.disconnect();
      throw error;
    }
  }

  private async start(): Promise<void> {
    await this.subscriptions.start([this.keys.workerProbe(this.workerId)]);
    await this.lease.register();
    await this.commands.sadd(this.keys.workers(), this.workerId);
    this.probes.connected();
  }

  login(user: string, client: ClientHandle): Promise<LoginResult> {
    return this.guarded(async () => {
      const member: Member = { loginId: this.mintLoginId(), user };
      const inbox = this.keys.userInbox(nameKey(user));
      // Subscribed first, so a message sent the instant after OK already has a way here.
      await this.subscriptions.hold(inbox);
      let claimed: 1 | 0 | -1;
      try {
        const workerId = this.workerId;
        claimed = await awaitReply(this.state.claim(member, workerId, this.deadline()), (late) => {
          if (late === 1) this.lateEffect('login');
          else void this.state.forget(member, workerId).catch(() => {});
        });
      } catch (error) {
        this.subscriptions.release(inbox);
        throw error;
      }
      if (claimed !== 1) {
        this.subscriptions.release(inbox);
        void this.state.forget(member, this.workerId).catch(() => {});
        if (claimed === EXPIRED) throw new BackplaneUnavailableError('timeout');
        return 'taken';
      }
      this.logins.add(member, client);
      return { member };
    });
  }

  async logout(member: Member): Promise<void> {
    const login = this.logins.remove(member.loginId);
    if (!login) return;
    this.endLogin(login, false);
    try {
      await this.guarded(() => this.state.release(member, this.workerId));
    } catch {
      // The session's record stays in this worker's set, so the next reconcile finishes this.
      this.pendingRepair ??= { reason: 'a logout could not finish', renew: false };
    }
  }

  join(member: Member, room: string): Promise<JoinResult> {
    return this.guarded(async () => {
      const login = this.acting(member);
      const roomKey = nameKey(room);
      if (login.rooms.has(roomKey)) return 'already-joined';
      const ticket = await this.feeds?.enter(roomKey);
      let outcome: 'joined' | 'already-member' | 'refused' = 'refused';
      try {
        const deadline = this.deadline();
        const reserved = await awaitReply(this.state.reserve(member, roomKey, deadline), (late) => {
          if (late === 2) this.lateEffect('join');
        });
        if (reserved === 0) return 'too-many-rooms';
        if (reserved === -2) return this.notOwner();
        if (reserved === EXPIRED) throw new BackplaneUnavailableError('timeout');
        const joined = await awaitReply(this.state.join(member, roomKey, room, deadline), (late) => {
          if (late === 1) this.lateEffect('join');
        });
        if (joined === EXPIRED || joined === -3) {
          // Undone in the same order it was done: the index entry goes only after the refusal.
          if (reserved === 2) void this.state.unindex(member, roomKey).catch(() => this.lateEffect('join'));
          if (joined === EXPIRED) throw new BackplaneUnavailableError('timeout');
          return 'room-full';
        }
        outcome = joined === 1 ? 'joined' : 'already-member';
        login.rooms.set(roomKey, room);
        return joined === 1 ? 'ok' : 'already-joined';
      } finally {
        if (ticket) this.feeds!.joined(ticket, member.loginId, outcome);
      }
    });
  }

  part(member: Member, room: string): Promise<PartResult> {
    return this.guarded(async () => {
      const login = this.acting(member);
      const roomKey = nameKey(room);
      if (!login.rooms.has(roomKey)) return 'not-in-room';
      const since = this.feeds?.parting();
      const left = await awaitReply(this.state.partAndUnindex(member, roomKey, this.deadline()), (late) => {
        if (late === 1) this.lateEffect('part');
      });
      if (left === EXPIRED) throw new BackplaneUnavailableError('timeout');
      login.rooms.delete(roomKey);
      this.feeds?.left(roomKey, { loginId: member.loginId, since: since! });
      // Not a member in Redis either way now; the client's view (it was in the room) is answered.
      return 'ok';
    });
  }

  sendToRoom(sender: Member, room: string, text: string): Promise<RoomMessageResult> {
    return this.guarded(async () => {
      this.acting(sender);
      // Held before the DM batch below too, so it leaves in the same write as this message.
      this.roomWrites?.hold();
      // DMs accepted before this message must reach Redis before it: a recipient may be in the room.
      this.directs.flush();
      const roomKey = nameKey(room);
      const [lineBefore, lineAfter] = replies.roomMessageAround(sender.user, text);
      const [names] = this.keys.roomIndex(roomKey);
      const lookup = this.scripts.sendToRoom(this.keys.roomMembers(roomKey), names, nameKey(sender.user),
        sender.loginId, roomKey, this.deadline(), this.feeds ? 'feed' : 'members', lineBefore, lineAfter,
        this.keys.roomFeed(roomKey), this.publish);
      if (this.feeds) {
        const reply = await awaitReply(lookup, (late) => {
          if (late[0] === 1) metrics.lateEffects.inc({ kind: 'room' });
        });
        if (reply[0] === EXPIRED) throw new BackplaneUnavailableError('timeout');
        return reply[0] === 0 ? 'not-available' : { roomName: reply[1]! };
      }
      const lookedUp = this.membersOf(lookup);
      // Awaited only in the sender's turn, which may come after it failed: handled meanwhile.
      lookedUp.catch(() => {});
      return this.fanOutInOrder(sender, lookedUp, lineBefore, lineAfter);
    });
  }

  /**
   * Redis Cluster: the room's script answers with the members as of the instant it ran. When the
   * lookup is given up on, nothing is published later, so a room message answered SERVICE
   * UNAVAILABLE has no effect here even if the lookup did run.
   */
  private async membersOf(lookup: Promise<[1 | 0 | -1, string?, ...string[]]>): Promise<RoomMembers | 'not-available'> {
    const [status, roomName, ...entries] = await awaitReply(lookup, () => {});
    if (status === EXPIRED) throw new BackplaneUnavailableError('timeout');
    if (status === 0) return 'not-available';
    const members: RoomMembers['members'] = [];
    for (let i = 0; i < entries.length; i += 2) members.push([entries[i]!, entries[i + 1]!.slice(0, entries[i + 1]!.indexOf(' '))]);
    return { roomName: roomName!, members };
  }

  /**
   * Redis Cluster: the room's lookup may run early; its publishes wait the sender's turn
   * (sender-turns.ts). The line goes to each member's inbox addressed to the member's login id
   * (a later login of the name never gets it), from a script on the member's primary (see
   * publishTo-1.lua for why not a bare SPUBLISH).
   */
  private fanOutInOrder(sender: Member, lookedUp: Promise<RoomMembers | 'not-available'>, lineBefore: string, lineAfter: string,
  ): Promise<RoomMessageResult> {
    return this.inTurn(sender, async () => {
      const room = await lookedUp;
      if (room === 'not-available') return room;
      const line = lineBefore + room.roomName + lineAfter;
      // At most once: a member whose node does not take the publish within the reply wait misses
      // this message (counted), and the sender's turn, and the gate, move on without it. One
      // wait for the whole fan-out, not a timer per member.
      let unanswered = room.members.length;
      let gaveUp = false;
      const publishes = room.members.map(([memberKey, loginId]) => this.scripts.publishTo(
        this.keys.user(memberKey), this.keys.userInbox(memberKey), loginId, `${loginId} ${line}`, this.publish).then(() => {
        unanswered--;
      }, () => {
        if (gaveUp) return;
        unanswered--;
        metrics.deliveriesDropped.inc({ reason: 'unpublished' });
      }));
      try {
        await awaitReply(Promise.all(publishes), () => {});
      } catch {
        gaveUp = true;
        metrics.deliveriesDropped.inc({ reason: 'unpublished' }, unanswered);
      }
      return { roomName: room.roomName };
    });
  }

  /** A sender's delivery, in its turn on Redis Cluster (sender-turns.ts), at once on one primary. */
  private inTurn<T>(sender: Member, delivery: () => Promise<T>): Promise<T> {
    return this.senderTurns ? this.senderTurns.take(sender.loginId, delivery) : delivery();
  }

  sendToUser(sender: Member, user: string, text: string): Promise<UserMessageResult> {
    return this.guarded(() => {
      this.acting(sender);
      const line = replies.userMessage(sender.user, text);
      const send = () => this.directs.send(sender, nameKey(sender.user), nameKey(user), line, this.directResult);
      // Redis Cluster: DMs share a sender's turn (sender-turns.ts); at once on one primary.
      return this.senderTurns ? this.senderTurns.share(sender.loginId, send) : send();
    });
  }

  private readonly directResult = (sent: DirectOutcome): UserMessageResult => {
    if (sent === -2) return this.notOwner();
    return sent === 1 ? 'ok' : 'not-found';
  };

  confirm(member: Member): Promise<void> {
    return this.guarded(async () => {
      this.acting(member);
    });
  }

  roomMembers(member: Member, room: string): Promise<RoomMembersResult> {
    return this.guarded(async () => {
      this.acting(member);
      const roomKey = nameKey(room);
      const [names] = this.keys.roomIndex(roomKey);
      const roomName = await this.read(this.commands.hget(names, roomKey));
      if (roomName === null) return 'not-available';
      // In steps, so Redis never works long for one WHO; a member seen twice is listed once.
      const members = new Map<string, string>();
      let cursor = '0';
      do {
        const [next, entries] = await this.read(this.commands.hscan(this.keys.roomMembers(roomKey), cursor, 'COUNT', WHO_SCAN_COUNT));
        for (let i = 0; i < entries.length; i += 2) members.set(entries[i]!, entries[i + 1]!.slice(entries[i + 1]!.indexOf(' ') + 1));
        cursor = next;
      } while (cursor !== '0');
      return members.size === 0 ? 'not-available' : { roomName, members: [...members.values()] };
    });
  }

  listRooms(member: Member): Promise<RoomListing[]> {
    return this.guarded(async () => {
      this.acting(member);
      const shards = await Promise.all(Array.from({ length: ROOM_SHARDS }, (_, shard) =>
        this.read(this.scripts.listRooms(this.keys.roomNames(shard), this.keys.roomSizes(shard)))));
      const rooms: RoomListing[] = [];
      for (const flat of shards) {
        for (let i = 0; i < flat.length; i += 3) rooms.push({ name: flat[i + 1]!, members: Number(flat[i + 2]) });
      }
      return rooms.filter((room) => room.members > 0);
    });
  }

  status(): BackplaneStatus {
    const state = this.stateWord();
    return { up: state === 'ok', state };
  }

  /** Since this worker last saw its own probe come back through its subscription. */
  probeLagSeconds(): number {
    return this.probes.lagMs() / 1000;
  }

  /**
   * Leaves the cluster. Idempotent: a worker that fails to listen while it is told to stop
   * closes from both paths, and a second close disconnecting mid-way through the first would
   * leave the worker listed for a reaper to find.
   */
  close(): Promise<void> {
    return this.closed ??= this.leave();
  }

  private async leave(): Promise<void> {
    this.closing = true;
    this.lease.stop();
    this.gate.refuseAll(new BackplaneUnavailableError('unreachable'));
    // A session whose logout could not finish (Redis away during the goodbyes) is still
    // recorded: the worker then stays listed, so that a reaper releases it once the key is gone.
    const unreleased = await this.commands.scard(this.keys.workerSessions(this.workerId)).catch(() => -1);
    await this.commands.del(this.keys.workerAlive(this.workerId)).catch(() => {});
    if (unreleased === 0) await this.commands.srem(this.keys.workers(), this.workerId).catch(() => {});
    else this.options.log.warn({ unreleased: unreleased < 0 ? 'unknown' : unreleased }, 'stopping with sessions Redis still holds; a live worker\'s reaper releases them');
    await Promise.allSettled([this.commands.quit(), this.subscriber.quit()]);
    // QUIT closes the connection but not ioredis' Sentinel failover detector, whose sentinel
    // connections would otherwise go on reconnecting and keep the process alive.
    this.commands.disconnect();
    this.subscriber.disconnect();
  }

  private stateWord(): string {
    if (this.closing) return 'closing';
    if (this.commands.status !== 'ready') return 'unreachable';
    if (this.lease.lastFailure?.reason === 'not-writable') return 'not-writable';
    if (this.restoring) return 'restoring';
    if (!this.lease.valid()) return this.lease.lastFailure ? 'unreachable' : 'lease-expired';
    if (!this.subscriptions.connected) return 'subscriber-down';
    if (this.subscriberSilent()) return 'subscriber-silent';
    return 'ok';
  }

  // The gate.

  /**
   * Runs a step once the gate (gate.ts) admits it: in this very call when it is open and nobody
   * waits, so steps reach Redis in the order they were called. Failures are reported as the
   * backplane reports them, and an outage is logged once.
   */
  private guarded<T>(step: () => Promise<T>): Promise<T> {
    let waiting: Promise<void> | undefined;
    try {
      waiting = this.enterGate();
    } catch (error) {
      return Promise.reject(this.refused(error));
    }
    if (waiting) return waiting.then(() => this.admitted(step), (error: unknown) => { throw this.refused(error); });
    return this.admitted(step);
  }

  /**
   * Runs a step the gate admitted, and leaves the gate when it settles. Chained, not async: a
   * DM passes here, and each async layer costs every DM a promise more to make and collect.
   */
  private admitted<T>(step: () => Promise<T>): Promise<T> {
    let running: Promise<T>;
    try {
      running = step();
    } catch (error) {
      this.gate.leave();
      return Promise.reject(this.refused(error));
    }
    return running.then(this.leaveWith, this.leaveRefusing) as Promise<T>;
  }

  private readonly leaveWith = <T>(value: T): T => {
    this.gate.leave();
    return value;
  };

  private readonly leaveRefusing = (error: unknown): never => {
    this.gate.leave();
    throw this.refused(error);
  };

  private enterGate(): Promise<void> | undefined {
    // Redis away: say so at once rather than wait.
    if (this.closing || this.commands.status !== 'ready') throw new BackplaneUnavailableError('unreachable');
    const waiting = this.gate.enter();
    // After a pause the lease has run out: one heartbeat re-verifies it before anything is done.
    if (waiting && !this.lease.valid()) void this.lease.beat();
    return waiting;
  }

  private refused(error: unknown): unknown {
    const failure = asBackplaneError(error);
    if (isUnavailable(failure)) this.outage.refused(failure);
    return failure;
  }

  // Faults and repair.

  private onRenewed(sentAt: number): void {
    this.gate.pump();
    this.probes.published(sentAt);
    if (this.subscriberSilent()) {
      // Connected but silent: a subscriber that no longer delivers. Reconnecting resubscribes.
      this.options.log.warn({ silentMs: Math.round(this.probes.lagMs()) }, 'delivery connection stopped delivering; reconnecting it');
      this.probes.connected();
      this.subscriptions.reconnect();
    }
    if (this.pendingRepair) this.repair(this.pendingRepair.reason, this.pendingRepair.renew);
    else void this.reaper.pass();
    if (this.status().up) this.outage.over();
  }

  /** The delivery connection is up but its own probes do not come back (probe-watch.ts). */
  private subscriberSilent(): boolean {
    return this.subscriptions.connected && this.probes.silent();
  }

  /** Runs a reconcile with the gate closed; one at a time, another queued if asked meanwhile. */
  private repair(reason: string, renew: boolean): void {
    if (this.closing) return;
    if (this.restoring) {
      this.pendingRepair = { reason, renew: renew || (this.pendingRepair?.renew ?? false) };
      return;
    }
    if (renew) metrics.leaseLosses.inc();
    this.restoring = true;
    this.pendingRepair = undefined;
    const idBefore = this.workerId;
    void (async () => {
      try {
        await this.gate.drained();
        await this.reconciler.restore(reason, renew);
      } catch (error) {
        // A renewal that already took its new id does not renew again: the next, plain
        // reconcile releases what this one claimed under it and renames the rest.
        this.pendingRepair = { reason, renew: renew && this.workerId === idBefore };
        this.options.log.warn({ err: error, reason }, 'reconcile failed; retrying after the next heartbeat');
      } finally {
        this.restoring = false;
        this.gate.pump();
      }
    })();
  }

  private async renewIdentity(): Promise<void> {
    const previous = this.workerId;
    this.workerId = newWorkerId();
    try {
      await this.lease.register();
    } catch (error) {
      this.workerId = previous;
      throw error;
    }
    await this.commands.sadd(this.keys.workers(), this.workerId);
    await this.subscriptions.replacePermanent([this.keys.workerProbe(this.workerId)]);
    this.options.log.warn({ from: previous, to: this.workerId }, 'this worker was taken for dead; continuing under a new worker id');
  }

  /** Answered SERVICE UNAVAILABLE, applied anyway: counted, and undone by a reconcile. */
  private lateEffect(kind: 'login' | 'join' | 'part'): void {
    metrics.lateEffects.inc({ kind });
    this.pendingRepair ??= { reason: `a ${kind} took effect after its client was told it failed`, renew: false };
  }

  /**
   * The login of a member acting now. A login still under an earlier id of this worker has not
   * been restored since the worker was taken for dead (its name may belong to someone else by
   * now): it may not act until a reconcile restores it or tells it its name is gone.
   */
  private acting(member: Member): LocalLogin {
    const login = this.logins.acting(member);
    if (!mintedBy(member.loginId, this.workerId)) this.notOwner();
    return login;
  }

  /** Redis does not know a login this worker holds: it is being restored, or must be. */
  private notOwner(): never {
    this.pendingRepair ??= { reason: 'Redis did not know a live login', renew: false };
    throw new BackplaneUnavailableError('not-owner');
  }

  /** Stops delivering to a login here; `nameLost`: the name went to another login, tell the client. */
  private endLogin(login: LocalLogin, nameLost: boolean): void {
    if (nameLost) this.logins.remove(login.member.loginId);
    this.subscriptions.release(this.keys.userInbox(login.userKey));
    for (const roomKey of login.rooms.keys()) this.feeds?.left(roomKey);
    // Left here once and for all: a reconcile still working on this login must not leave again.
    login.rooms.clear();
    if (nameLost) login.client.nameLost();
  }

  private onMessage(channel: string, message: Buffer): void {
    switch (channelKind(channel)) {
      case 'inbox': {
        const space = message.indexOf(SPACE);
        // Copied: the parser may reuse the memory it handed us before a slow socket sends it.
        if (space > 0) this.logins.deliver(message.toString('latin1', 0, space), Buffer.from(message.subarray(space + 1)));
        return;
      }
      case 'feed':
        this.feeds?.onFeed(channel, message);
        return;
      case 'probe':
        this.probes.seen();
    }
  }

  private deadline(): number {
    return this.lease.deadline(COMMAND_BUDGET_MS);
  }

  /** A read: no deadline (it changes nothing), but answered within REPLY_WAIT_MS all the same. */
  private read<T>(reply: Promise<T>): Promise<T> {
    return awaitReply(reply, () => {});
  }

  private mintLoginId(): string {
    return mintLoginId(this.workerId, ++this.loginCount);
  }
}
