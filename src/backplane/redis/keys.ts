// Every Redis key and channel name chatline uses is built here and nowhere else.
// Keys are wrapped in a hash tag ({alice}, {#lobby}) so that each script touches one Redis
// Cluster slot: a user's keys share the user's slot, a room's keys share the room's slot.
// Arguments are name keys (lower-cased); a room key keeps its '#', so it never equals a user key.

export class RedisKeys {
  constructor(readonly prefix: string) {}

  /** Hash: name (display), worker, conn (connection id), since (login time, ms). */
  user(userKey: string): string {
    return `${this.prefix}{${userKey}}:user`;
  }

  /** Set of room keys the user joined; a superset of its real memberships (see join). */
  userRooms(userKey: string): string {
    return `${this.prefix}{${userKey}}:rooms`;
  }

  /** Hash: member key → that member's connection id. */
  roomMembers(roomKey: string): string {
    return `${this.prefix}{${roomKey}}:members`;
  }

  /** String: the room's display spelling, set by the member who created it. */
  roomName(roomKey: string): string {
    return `${this.prefix}{${roomKey}}:name`;
  }

  /** Set of every worker id that has registered and not yet been cleaned up. */
  workers(): string {
    return `${this.prefix}workers`;
  }

  /** String with a TTL, refreshed by the worker's heartbeat: gone means the worker is dead. */
  workerAlive(workerId: string): string {
    return `${this.prefix}{worker:${workerId}}:alive`;
  }

  /** Set of "<user key> <connection id>" the worker holds; a superset, added before LOGIN. */
  workerSessions(workerId: string): string {
    return `${this.prefix}{worker:${workerId}}:sessions`;
  }

  /** Lock held by the one worker cleaning up after a dead one. */
  workerReaper(workerId: string): string {
    return `${this.prefix}{worker:${workerId}}:reaper`;
  }

  /** Channel a worker publishes to itself, to prove its subscriber still delivers. */
  workerProbe(workerId: string): string {
    return `${this.prefix}{worker:${workerId}}:probe`;
  }

  /** Pub/sub channel carrying deliveries to one user, subscribed by the worker that holds it. */
  userChannel(userKey: string): string {
    const [before, after] = this.userChannelAround();
    return before + userKey + after;
  }

  /** userChannel split around the user key, for scripts that fan out to many users. */
  userChannelAround(): [before: string, after: string] {
    return [`${this.prefix}{`, '}:inbox'];
  }
}
