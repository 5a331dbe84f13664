import type { Redis } from 'ioredis';
import { nameKey } from '../../protocol/names.js';
import { replies } from '../../protocol/replies.js';
import type {
  Backplane, DeliverySink, JoinResult, LoginResult, Member, PartResult, RoomMessageResult, UserMessageResult,
} from '../types.js';
import { BackplaneUnavailableError } from '../types.js';
import { connectRedis } from './connection.js';
import { RedisKeys } from './keys.js';
import { type ChatScripts, loadScripts } from './scripts.js';

// The clustered backplane. State lives in Redis (see keys.ts); every check-then-act is one
// Lua script in one slot. Deliveries travel over one pub/sub channel per user: this worker
// subscribes to the channels of the users it holds, on one subscriber connection, and each
// message names the connection it is for, so nothing reaches a later session of the same name.

export interface RedisBackplaneOptions {
  url: string;
  prefix: string;
  workerId: string;
  maxRoomsPerUser: number;
  deliver: DeliverySink;
}

interface Subscription {
  holders: number;
  ready: Promise<unknown>;
}

export class RedisBackplane implements Backplane {
  private readonly keys: RedisKeys;
  private readonly scripts: ChatScripts;
  private readonly subscriptions = new Map<string, Subscription>();

  private constructor(
    private readonly commands: Redis,
    private readonly subscriber: Redis,
    private readonly options: RedisBackplaneOptions,
  ) {
    this.keys = new RedisKeys(options.prefix);
    this.scripts = loadScripts(commands);
    subscriber.on('message', (_channel: string, message: string) => {
      const space = message.indexOf(' ');
      if (space > 0) options.deliver(message.slice(0, space), message.slice(space + 1));
    });
  }

  static async connect(options: RedisBackplaneOptions): Promise<RedisBackplane> {
    const commands = await connectRedis(options.url, `${options.workerId}:commands`);
    try {
      const subscriber = await connectRedis(options.url, `${options.workerId}:deliveries`);
      return new RedisBackplane(commands, subscriber, options);
    } catch (error) {
      commands.disconnect();
      throw error;
    }
  }

  async login(member: Member): Promise<LoginResult> {
    const userKey = nameKey(member.user);
    const channel = this.keys.userChannel(userKey);
    // Subscribed first, so a message sent the instant after OK already has a way here.
    await this.hold(channel);
    try {
      const claimed = await this.scripts.login(
        this.keys.user(userKey), member.user, this.options.workerId, member.connectionId, Date.now());
      if (claimed === 1) return 'ok';
    } catch (error) {
      this.release(channel);
      throw unavailable(error);
    }
    this.release(channel);
    return 'taken';
  }

  async logout(member: Member): Promise<void> {
    const userKey = nameKey(member.user);
    try {
      // Leave the rooms before freeing the name: if this stops half-way, the index still
      // lists every room, so a later cleanup finishes the job.
      const rooms = await this.commands.smembers(this.keys.userRooms(userKey));
      await Promise.all(rooms.map((roomKey) => this.scripts.partRoom(
        this.keys.roomMembers(roomKey), this.keys.roomName(roomKey), userKey, member.connectionId)));
      await this.scripts.logout(this.keys.user(userKey), this.keys.userRooms(userKey), member.connectionId);
    } catch (error) {
      throw unavailable(error);
    } finally {
      this.release(this.keys.userChannel(userKey));
    }
  }

  async join(member: Member, room: string): Promise<JoinResult> {
    const userKey = nameKey(member.user);
    const roomKey = nameKey(room);
    try {
      const reserved = await this.scripts.reserveRoom(
        this.keys.user(userKey), this.keys.userRooms(userKey), member.connectionId, roomKey,
        this.options.maxRoomsPerUser);
      if (reserved === 0) return 'too-many-rooms';
      if (reserved === -1) throw new Error(`connection ${member.connectionId} no longer holds ${userKey}`);
      const joined = await this.scripts.joinRoom(
        this.keys.roomMembers(roomKey), this.keys.roomName(roomKey), userKey, member.connectionId, room);
      return joined === 1 ? 'ok' : 'already-joined';
    } catch (error) {
      throw unavailable(error);
    }
  }

  async part(member: Member, room: string): Promise<PartResult> {
    const userKey = nameKey(member.user);
    const roomKey = nameKey(room);
    try {
      // Sent back to back: the index entry goes even when the membership was already gone.
      const [left] = await Promise.all([
        this.scripts.partRoom(this.keys.roomMembers(roomKey), this.keys.roomName(roomKey), userKey, member.connectionId),
        this.scripts.unindexRoom(this.keys.user(userKey), this.keys.userRooms(userKey), member.connectionId, roomKey),
      ]);
      return left === 1 ? 'ok' : 'not-in-room';
    } catch (error) {
      throw unavailable(error);
    }
  }

  async sendToRoom(sender: Member, room: string, text: string): Promise<RoomMessageResult> {
    const roomKey = nameKey(room);
    const [lineBefore, lineAfter] = replies.roomMessageAround(sender.user, text);
    const [channelBefore, channelAfter] = this.keys.userChannelAround();
    try {
      const roomName = await this.scripts.sendToRoom(
        this.keys.roomMembers(roomKey), this.keys.roomName(roomKey), nameKey(sender.user), sender.connectionId,
        lineBefore, lineAfter, channelBefore, channelAfter, room);
      return roomName === null ? 'not-available' : { roomName };
    } catch (error) {
      throw unavailable(error);
    }
  }

  async sendToUser(sender: Member, user: string, text: string): Promise<UserMessageResult> {
    const userKey = nameKey(user);
    try {
      const sent = await this.scripts.sendToUser(
        this.keys.user(userKey), this.keys.userChannel(userKey), replies.userMessage(sender.user, text));
      return sent === 1 ? 'ok' : 'not-found';
    } catch (error) {
      throw unavailable(error);
    }
  }

  isHealthy(): boolean {
    return this.commands.status === 'ready' && this.subscriber.status === 'ready';
  }

  async close(): Promise<void> {
    await Promise.allSettled([this.commands.quit(), this.subscriber.quit()]);
  }

  /** Subscribes to a channel for one more holder; resolves once Redis confirmed it. */
  private async hold(channel: string): Promise<void> {
    let subscription = this.subscriptions.get(channel);
    if (!subscription) {
      subscription = { holders: 0, ready: this.subscriber.subscribe(channel) };
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
