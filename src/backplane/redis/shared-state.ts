import { nameKey } from '../../protocol/names.js';
import type { Member } from '../types.js';
import type { RedisClient } from './client.js';
import type { RedisKeys } from './keys.js';
import { type ChatScripts, type Deadline, NO_DEADLINE } from './scripts.js';

// The steps that change users and rooms in Redis, each one script in one slot, and the
// sequences that span slots (a user's and a room's), ordered so that a failure at any point
// leaves something cleanup can finish: a worker records a session before claiming its name,
// and a user's room index is a superset of its memberships (added to before a join, removed
// from after a part), so releasing a session walks the index and never misses a room.
//
// Used by the live commands (index.ts), by reconcile and by the reaper alike.

export interface SharedStateOptions {
  /** PUBLISH, or SPUBLISH on Redis Cluster. */
  publish: 'PUBLISH' | 'SPUBLISH';
  /** Room messages travel on room feeds (one Redis primary); else to each member's inbox. */
  feeds: boolean;
  maxRoomsPerUser: number;
  maxRoomMembers: number;
  /**
   * All commands travel on one connection to one server, which runs them in the order sent:
   * a step may be sent before the previous one's reply arrives. On Redis Cluster each slot's
   * node has its own connection, so a step waits for the one before it.
   */
  oneConnection: boolean;
}

/** A worker's record of one session it holds: "<user key> <login id>". */
export function sessionEntry(member: Member): string {
  return `${nameKey(member.user)} ${member.loginId}`;
}

/** The session a record names; its user is the name key (display spelling is not recorded). */
export function recordedMember(entry: string): Member {
  const [user, loginId] = entry.split(' ') as [string, string];
  return { user, loginId };
}

export class SharedState {
  constructor(
    readonly commands: RedisClient,
    readonly scripts: ChatScripts,
    readonly keys: RedisKeys,
    readonly options: SharedStateOptions,
  ) {}

  /**
   * Records the session as this worker's, then claims its name: a crash between the two never
   * hides a login from the reaper. 1 claimed, 0 taken, -1 past its deadline.
   */
  async claim(member: Member, workerId: string, deadline: Deadline, replaces = ''): Promise<1 | 0 | -1> {
    const userKey = nameKey(member.user);
    const record = this.commands.sadd(this.keys.workerSessions(workerId), sessionEntry(member));
    if (!this.options.oneConnection) await record;
    const claim = this.scripts.login(this.keys.user(userKey), member.user, workerId, member.loginId, Date.now(), deadline, replaces);
    const [, claimed] = await Promise.all([record, claim]);
    return claimed;
  }

  forget(member: Member, workerId: string): Promise<number> {
    return this.commands.srem(this.keys.workerSessions(workerId), sessionEntry(member));
  }

  /** 2 added to the user's index, 1 already there, 0 over the limit, -1 past deadline, -2 not the name's holder. */
  reserve(member: Member, roomKey: string, deadline: Deadline): Promise<2 | 1 | 0 | -1 | -2> {
    const userKey = nameKey(member.user);
    return this.scripts.reserveRoom(this.keys.user(userKey), this.keys.userRooms(userKey), member.loginId, roomKey,
      this.options.maxRoomsPerUser, deadline);
  }

  /** 1 joined, 0 already a member, -1 past deadline, -3 room full. */
  join(member: Member, roomKey: string, spelling: string, deadline: Deadline): Promise<1 | 0 | -1 | -3> {
    const [names, sizes] = this.keys.roomIndex(roomKey);
    return this.scripts.joinRoom(this.keys.roomMembers(roomKey), names, sizes, nameKey(member.user), member.loginId,
      member.user, roomKey, spelling, this.options.maxRoomMembers, deadline, this.feed(roomKey), this.options.publish);
  }

  /** 1 left, 0 not a member (as this login, or `alsoLoginId`), -1 past deadline. */
  part(member: Member, roomKey: string, deadline: Deadline, alsoLoginId = ''): Promise<1 | 0 | -1> {
    const [names, sizes] = this.keys.roomIndex(roomKey);
    return this.scripts.partRoom(this.keys.roomMembers(roomKey), names, sizes, nameKey(member.user), member.loginId,
      alsoLoginId, roomKey, deadline, this.feed(roomKey), this.options.publish);
  }

  /** After a part: drops the room from the user's index. 1 dropped, 0 not there, -1 past deadline. */
  unindex(member: Member, roomKey: string, deadline: Deadline = NO_DEADLINE): Promise<1 | 0 | -1> {
    const userKey = nameKey(member.user);
    return this.scripts.unindexRoom(this.keys.user(userKey), this.keys.userRooms(userKey), member.loginId, roomKey, deadline);
  }

  /**
   * PART in Redis: the membership, then the index entry, both fenced by one deadline (the index
   * step runs after the part, so it can only miss a deadline the part met, never the reverse:
   * the index stays a superset). 1 left, 0 not a member, -1 past deadline.
   */
  async partAndUnindex(member: Member, roomKey: string, deadline: Deadline): Promise<1 | 0 | -1> {
    const part = this.part(member, roomKey, deadline);
    if (!this.options.oneConnection && (await part) === -1) return -1;
    const unindex = this.unindex(member, roomKey, deadline);
    // A failed index step leaves an extra entry, which only the next reconcile removes.
    unindex.catch(() => {});
    return part;
  }

  /** Rooms in the user's index: every room it is in, maybe a few more. */
  indexedRooms(member: Member): Promise<string[]> {
    return this.commands.smembers(this.keys.userRooms(nameKey(member.user)));
  }

  /**
   * The whole of a logout in Redis: leaves every room in the index, frees the name, forgets the
   * session. Each step compares login ids, so releasing a session that already ended, or whose
   * name a newer login holds, changes nothing of the newer one. `alsoLoginId`: memberships the
   * same session still holds under its identity before a renewal go too.
   */
  async release(member: Member, workerId: string, alsoLoginId = ''): Promise<void> {
    const userKey = nameKey(member.user);
    // Rooms first: if this stops half-way, the index still lists every room, so a later
    // cleanup finishes the job.
    const rooms = await this.indexedRooms(member);
    await Promise.all(rooms.map((roomKey) => this.part(member, roomKey, NO_DEADLINE, alsoLoginId)));
    await this.scripts.logout(this.keys.user(userKey), this.keys.userRooms(userKey), member.loginId);
    await this.forget(member, workerId);
  }

  private feed(roomKey: string): string {
    return this.options.feeds ? this.keys.roomFeed(roomKey) : '';
  }
}
