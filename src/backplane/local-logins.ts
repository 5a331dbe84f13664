import { metrics } from '../metrics.js';
import { nameKey } from '../protocol/names.js';
import { BackplaneUnavailableError } from './errors.js';
import type { ClientHandle, Member } from './types.js';

// The logins one worker holds, with the rooms each joined: the worker's own truth, which the
// shared state is made to match again after a fault, and the routing table for deliveries.

export class LocalLogin {
  /** Rooms joined, by room key → the spelling used at JOIN. */
  readonly rooms = new Map<string, string>();

  constructor(public member: Member, readonly client: ClientHandle) {}

  get userKey(): string {
    return nameKey(this.member.user);
  }
}

export class LocalLogins {
  private readonly byId = new Map<string, LocalLogin>();

  add(member: Member, client: ClientHandle): LocalLogin {
    const login = new LocalLogin(member, client);
    this.byId.set(member.loginId, login);
    return login;
  }

  get(loginId: string): LocalLogin | undefined {
    return this.byId.get(loginId);
  }

  /** The login of a member acting now; refused if it is not (or no longer) held here. */
  acting(member: Member): LocalLogin {
    const login = this.byId.get(member.loginId);
    if (!login || login.member !== member) throw new BackplaneUnavailableError('not-owner');
    return login;
  }

  remove(loginId: string): LocalLogin | undefined {
    const login = this.byId.get(loginId);
    this.byId.delete(loginId);
    return login;
  }

  /** Whether the login is still held here: it may log out while a reconcile works on it. */
  holds(login: LocalLogin): boolean {
    return this.byId.get(login.member.loginId) === login;
  }

  /**
   * Gives a login a new identity (after a fault): deliveries for the old id stop reaching it.
   * False, and nothing changed, when the login ended meanwhile: its client must not take it back.
   */
  rename(login: LocalLogin, member: Member): boolean {
    if (!this.holds(login)) return false;
    this.byId.delete(login.member.loginId);
    login.member = member;
    this.byId.set(member.loginId, login);
    login.client.rebound(member);
    return true;
  }

  all(): LocalLogin[] {
    return [...this.byId.values()];
  }

  get size(): number {
    return this.byId.size;
  }

  /** Hands lines to the login's client; a login that ended meanwhile drops them (at most once). */
  deliver(loginId: string, lines: string | Uint8Array): void {
    const login = this.byId.get(loginId);
    if (login) login.client.deliver(lines);
    else metrics.deliveriesDropped.inc({ reason: 'gone' });
  }
}
