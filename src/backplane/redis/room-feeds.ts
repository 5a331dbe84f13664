import type { LocalLogins } from '../local-logins.js';
import type { RedisKeys } from './keys.js';
import type { Subscriptions } from './subscriptions.js';

// Room delivery on one Redis primary: a room message is one publish to the room's feed, read by
// every worker that holds members of the room, which writes it to those members. Redis' cost
// per message is one message per such worker, whatever the room's size.
//
// Who gets a message must be who was a member when Redis ran it. JOIN and PART publish an event
// on the same feed in the same script as the change, and a worker subscribes to the feed before
// its first member's JOIN runs, so the worker reads, in Redis' own order: the messages before a
// join, the join, the messages after it. Each worker keeps, per room, its members as of the last
// event it read, and writes each message to exactly those.
//
// Per-sender order across a DM and a room message holds because one subscriber connection
// receives both the recipient's inbox and the room's feed: Redis delivers a connection's
// messages in the order it ran the publishes, and one sender's commands run in order.
//
// Feed messages: "J <login id>", "P <login id>", "M <sender's login id> <line>".

interface FeedView {
  readonly roomKey: string;
  /** Local logins that are members, as of the last event read from the feed. */
  readonly members: Set<string>;
  /** Local logins that are members or on their way in or out: the feed's subscription holders. */
  holders: number;
}

/** What a JOIN in progress needs to remember between entering the feed and its outcome. */
export interface FeedTicket {
  readonly channel: string;
  readonly generation: number;
}

const SPACE = 0x20;
const JOINED = 0x4a; // 'J'
const PARTED = 0x50; // 'P'
const MESSAGE = 0x4d; // 'M'

export class RoomFeeds {
  private readonly views = new Map<string, FeedView>();
  /** Counts resubscriptions: a join that saw one cannot count on its own event. */
  private generation = 0;

  constructor(
    private readonly keys: RedisKeys,
    private readonly subscriptions: Subscriptions,
    private readonly logins: LocalLogins,
  ) {}

  /** Before a JOIN's script runs: subscribes the feed (once per worker), so the join's own event arrives. */
  async enter(roomKey: string): Promise<FeedTicket> {
    const channel = this.keys.roomFeed(roomKey);
    let view = this.views.get(channel);
    if (!view) {
      view = { roomKey, members: new Set(), holders: 0 };
      this.views.set(channel, view);
    }
    view.holders++;
    const generation = this.generation;
    try {
      await this.subscriptions.hold(channel);
    } catch (error) {
      this.drop(channel, view, false);
      throw error;
    }
    return { channel, generation };
  }

  /** The JOIN's outcome: refused releases the feed; joined adds the member if its event may have been lost. */
  joined(ticket: FeedTicket, loginId: string, outcome: 'joined' | 'already-member' | 'refused'): void {
    const view = this.views.get(ticket.channel);
    if (!view) return;
    if (outcome === 'refused') return this.drop(ticket.channel, view, true);
    // Already a member before this JOIN: every message still unread came after that.
    if (outcome === 'already-member' || ticket.generation !== this.generation) view.members.add(loginId);
  }

  /** Before a PART's script runs: what left() needs to tell whether the part's own event may be lost. */
  parting(): number {
    return this.generation;
  }

  /**
   * The login is no longer a member here (PART, LOGOUT, lost name). Its part event, read in
   * order, removes it from the view; a login that ended gets nothing written anyway. A PART
   * during which the feed was subscribed again (`since` another generation) may have lost its
   * event, and the rebuild counted the member in: it is removed now.
   */
  left(roomKey: string, parted?: { loginId: string; since: number }): void {
    const channel = this.keys.roomFeed(roomKey);
    const view = this.views.get(channel);
    if (!view) return;
    if (parted && parted.since !== this.generation) view.members.delete(parted.loginId);
    this.drop(channel, view, true);
  }

  /** A message read from a room's feed. */
  onFeed(channel: string, message: Buffer): void {
    const view = this.views.get(channel);
    if (!view) return;
    const space = message.indexOf(SPACE, 2);
    const loginId = message.toString('latin1', 2, space === -1 ? message.length : space);
    switch (message[0]) {
      case JOINED:
        // Only logins of this worker matter here; their JOIN held the feed first.
        if (this.logins.get(loginId)) view.members.add(loginId);
        return;
      case PARTED:
        view.members.delete(loginId);
        return;
      case MESSAGE: {
        if (space === -1) return;
        // Copied once: the parser may reuse the memory before a slow socket sends it.
        const line = Buffer.from(message.subarray(space + 1));
        for (const member of view.members) {
          if (member !== loginId) this.logins.deliver(member, line);
        }
      }
    }
  }

  /** Events were lost with the subscription: each view becomes what the local logins say. */
  resubscribed(): void {
    this.generation++;
    this.rebuild();
  }

  /** After logins were restored (maybe under new ids): each view becomes what the local logins say. */
  rebuild(): void {
    for (const view of this.views.values()) view.members.clear();
    for (const login of this.logins.all()) {
      for (const roomKey of login.rooms.keys()) this.views.get(this.keys.roomFeed(roomKey))?.members.add(login.member.loginId);
    }
  }

  private drop(channel: string, view: FeedView, subscribed: boolean): void {
    if (subscribed) this.subscriptions.release(channel);
    if (--view.holders === 0) this.views.delete(channel);
  }
}
