// Every Redis key and channel name chatline uses is built here and nowhere else.
// Keys are wrapped in a hash tag so that each script touches one Redis Cluster slot:
//   {alice}        a user's hash, room index and inbox channel;
//   {rooms:N}      one of ROOM_SHARDS shards of rooms: each room's members and feed channel,
//                  and the shard's index of room names and sizes, so that JOIN and PART keep
//                  the index exact in the same atomic step, and ROOMS reads ROOM_SHARDS hashes;
//   {worker:ID}    a worker's heartbeat, session record, reaper lock and probe channel.
// Arguments are name keys (lower-cased); a room key keeps its '#', so it never equals a user key.

/** Shards of the room index. Fixed: rooms are found by hashing into them. */
export const ROOM_SHARDS = 64;

/** The shard of a room: FNV-1a of its key (ASCII), so every worker computes the same one. */
export function roomShard(roomKey: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < roomKey.length; i++) {
    hash ^= roomKey.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash % ROOM_SHARDS;
}

export class RedisKeys {
  constructor(readonly prefix: string) {}

  /** Hash: name (display), login (login id), worker, since (login time, ms). */
  user(userKey: string): string {
    return `${this.prefix}{${userKey}}:user`;
  }

  /** Set of room keys the user joined; a superset of its real memberships (see reserveRoom). */
  userRooms(userKey: string): string {
    return `${this.prefix}{${userKey}}:rooms`;
  }

  /** Pub/sub channel carrying deliveries to one user, subscribed by the worker that holds it. */
  userInbox(userKey: string): string {
    return `${this.prefix}{${userKey}}:inbox`;
  }

  /** Hash: member key → "<login id> <display name>". */
  roomMembers(roomKey: string): string {
    return `${this.prefix}{rooms:${roomShard(roomKey)}}:${roomKey}:members`;
  }

  /** Pub/sub channel of one room: its messages and its joins and parts, in Redis' order. */
  roomFeed(roomKey: string): string {
    return `${this.prefix}{rooms:${roomShard(roomKey)}}:${roomKey}:feed`;
  }

  /** Hash: room key → display spelling, for every room of the shard that exists. */
  roomNames(shard: number): string {
    return `${this.prefix}{rooms:${shard}}:names`;
  }

  /** Hash: room key → member count, for every room of the shard that exists. */
  roomSizes(shard: number): string {
    return `${this.prefix}{rooms:${shard}}:sizes`;
  }

  /** The shard index keys (names, sizes) of the shard a room lives in. */
  roomIndex(roomKey: string): [names: string, sizes: string] {
    const shard = roomShard(roomKey);
    return [this.roomNames(shard), this.roomSizes(shard)];
  }

  /** Set of every worker id that has registered and not yet been cleaned up. */
  workers(): string {
    return `${this.prefix}workers`;
  }

  /** String with a TTL, refreshed by the worker's heartbeat: gone means the worker is dead. */
  workerAlive(workerId: string): string {
    return `${this.prefix}{worker:${workerId}}:alive`;
  }

  /** Set of "<user key> <login id>" the worker holds; a superset, added before LOGIN. */
  workerSessions(workerId: string): string {
    return `${this.prefix}{worker:${workerId}}:sessions`;
  }

  /** Lock held by the one worker cleaning up after a dead one. */
  workerReaper(workerId: string): string {
    return `${this.prefix}{worker:${workerId}}:reaper`;
  }

  /** Channel a worker publishes to itself with each heartbeat, to prove its subscriber still delivers. */
  workerProbe(workerId: string): string {
    return `${this.prefix}{worker:${workerId}}:probe`;
  }
}

/** What kind of channel a delivery came on, from the name alone. */
export function channelKind(channel: string): 'inbox' | 'feed' | 'probe' | undefined {
  if (channel.endsWith(':inbox')) return 'inbox';
  if (channel.endsWith(':feed')) return 'feed';
  if (channel.endsWith(':probe')) return 'probe';
  return undefined;
}
