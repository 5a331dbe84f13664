import type { Logger } from '../../log.js';
import { metrics } from '../../metrics.js';
import { BackplaneUnavailableError } from '../errors.js';
import type { LocalLogin, LocalLogins } from '../local-logins.js';
import type { Member } from '../types.js';
import { mintedBy } from './login-ids.js';
import type { RoomFeeds } from './room-feeds.js';
import { type Deadline, EXPIRED, NO_DEADLINE } from './scripts.js';
import { recordedMember, sessionEntry, type SharedState } from './shared-state.js';
import type { Subscriptions } from './subscriptions.js';

// Makes Redis hold exactly this worker's live logins again, with exactly their rooms: the one
// repair for every fault that may have left Redis out of step with the worker. Redis restarted
// empty or failed over (lost writes); a command whose reply never came may or may not have run;
// a cleanup failed half-way; or the worker was taken for dead (renew), so its sessions may have
// been released and their names taken, and it comes back under a new id.
//
// The worker's own logins are the truth: recorded sessions that are no longer live are
// released, live ones claim their names again (whoever holds a name first keeps it; a login
// that lost its name is told) and get exactly their rooms back.

export interface ReconcileContext {
  readonly state: SharedState;
  readonly logins: LocalLogins;
  readonly feeds: RoomFeeds | undefined;
  readonly subscriptions: Subscriptions;
  workerId(): string;
  mintLoginId(): string;
  /** Takes a new worker id and registers it (heartbeat key, probe channel, worker set). */
  renewIdentity(): Promise<void>;
  deadline(): Deadline;
  /** The name went to another login meanwhile: end this one here and tell its client. */
  nameLost(login: LocalLogin): void;
  readonly log: Logger;
}

/** How long to wait for the delivery connection to be back before giving this attempt up. */
const SUBSCRIBER_WAIT_MS = 5000;

export class Reconciler {
  constructor(private readonly context: ReconcileContext) {}

  async restore(reason: string, renew: boolean): Promise<void> {
    const { state, logins, feeds, subscriptions, log } = this.context;
    // As at LOGIN: deliveries need a way here before names are claimed again.
    await subscriptions.restored(SUBSCRIBER_WAIT_MS);
    const previousId = this.context.workerId();
    if (renew) await this.context.renewIdentity();
    else await state.commands.sadd(state.keys.workers(), previousId);
    const workerId = this.context.workerId();

    const live = logins.all();
    let released = 0;
    if (!renew) {
      // A new id has recorded nothing yet; the old id's records go to the reaper.
      const liveEntries = new Set(live.map((login) => sessionEntry(login.member)));
      const gone = (await state.commands.smembers(state.keys.workerSessions(workerId))).filter((entry) => !liveEntries.has(entry));
      await Promise.all(gone.map((entry) => state.release(recordedMember(entry), workerId)));
      released = gone.length;
    }
    let lost = 0;
    await Promise.all(live.map(async (login) => {
      if (!(await this.restoreLogin(login, renew))) lost++;
    }));
    feeds?.rebuild();
    metrics.reconciles.inc();
    log.info({ reason, renewed: renew ? { from: previousId, to: workerId } : undefined, restored: live.length - lost, lost, released },
      'reconciled shared state');
  }

  /**
   * Claims the login's name again (under a new login id when renewing) and makes its rooms in
   * Redis exactly its rooms here. False when another login holds the name now.
   */
  async restoreLogin(login: LocalLogin, renew = false): Promise<boolean> {
    const { state, logins } = this.context;
    const workerId = this.context.workerId();
    const previous = login.member;
    // A login still under an earlier id of this worker (a renewal that stopped half-way) is
    // renamed too: the reaper of that id would otherwise release it.
    const rename = renew || !mintedBy(previous.loginId, workerId);
    const member: Member = rename ? { loginId: this.context.mintLoginId(), user: previous.user } : previous;
    const claimed = await state.claim(member, workerId, this.context.deadline(), rename ? previous.loginId : '');
    if (claimed === EXPIRED) throw new BackplaneUnavailableError('timeout');
    if (claimed === 0) {
      await state.forget(member, workerId);
      // Its memberships may have outlived its name (on Redis Cluster a failover of the user's
      // slot loses the name alone): each goes, compared by login id, so the new holder's stay.
      await Promise.all([...login.rooms.keys()].map((roomKey) => state.part(previous, roomKey, NO_DEADLINE)));
      if (logins.holds(login)) this.context.nameLost(login);
      return false;
    }
    const stillLive = rename ? logins.rename(login, member) : logins.holds(login);
    if (!stillLive) {
      // Logged out while its name was being claimed again; that logout's release ran (or will
      // run) for the identity it knew, so the one claimed here is released here.
      await state.release(member, workerId, rename ? previous.loginId : '');
      return true;
    }
    await this.restoreRooms(login, rename ? previous.loginId : '');
    return true;
  }

  private async restoreRooms(login: LocalLogin, previousLoginId: string): Promise<void> {
    const { state, logins, feeds, log } = this.context;
    const { member } = login;
    // Rooms it no longer has go first, so they never count against the room limit below.
    const indexed = await state.indexedRooms(member);
    const extra = indexed.filter((roomKey) => !login.rooms.has(roomKey));
    await Promise.all(extra.map(async (roomKey) => {
      await state.part(member, roomKey, NO_DEADLINE, previousLoginId);
      await state.unindex(member, roomKey);
    }));
    await Promise.all([...login.rooms].map(async ([roomKey, spelling]) => {
      const deadline = this.context.deadline();
      const reserved = await state.reserve(member, roomKey, deadline);
      if (reserved === EXPIRED || reserved === -2) throw new BackplaneUnavailableError(reserved === -2 ? 'not-owner' : 'timeout');
      const joined = reserved === 0 ? 'too many rooms' : await state.join(member, roomKey, spelling, deadline);
      if (joined === EXPIRED) throw new BackplaneUnavailableError('timeout');
      if (joined === -3 || joined === 'too many rooms') {
        // The room filled up, or the room limit shrank, while this member was away from it.
        // Left here only if the login still holds it: a LOGOUT meanwhile already left it.
        if (logins.holds(login) && login.rooms.delete(roomKey)) feeds?.left(roomKey);
        await state.unindex(member, roomKey);
        log.warn({ user: member.user, room: spelling, why: joined === -3 ? 'room full' : joined }, 'could not restore a membership');
      }
    }));
  }
}
