import { Cluster, type Redis } from 'ioredis';
import { RedisKeys, ROOM_SHARDS } from '../../src/backplane/redis/keys.js';
import type { Delivery, History, Operation, TrackedClient } from './tracked-client.js';

// Judges a run after the faults are over. Two kinds of check:
//   history: what the clients saw (no delivery of a message answered with an error, no
//            duplicate, per-sender order, no delivery naming a sender that did not hold the name);
//   state:   what Redis holds against what the open clients believe they hold (no ghost name or
//            membership, no logged-in client missing from Redis), and that every logged-in
//            client still receives (no deaf user).
// Each returns a list of violations, empty when the run was correct, so a test can print them all.

const TAG = /(?:^| )(h:(\d+):(\d+))$/;

interface Tagged {
  operation: Operation;
  delivery: Delivery;
  sender: string;
}

/** The name a delivery line says it came from. */
function senderOf(line: string): string {
  return line.split(' ')[1]!;
}

export interface HistoryOptions {
  /**
   * For runs whose faults lose replies (a connection cut, replies black-holed): a message
   * answered SERVICE UNAVAILABLE may have been delivered, but only this soon after it was sent
   * (docs/protocol.md, "An error means no effect"). Unset: never.
   */
  lostReplyBoundMs?: number;
}

export function checkHistory(history: History, options: HistoryOptions = {}): string[] {
  const violations: string[] = [];
  const operations = new Map(history.operations.map((operation) => [`${operation.client}:${operation.seq}`, operation]));
  const tagged: Tagged[] = [];
  for (const delivery of history.deliveries) {
    const match = TAG.exec(delivery.line);
    if (!match) continue;
    const operation = operations.get(`${match[2]}:${match[3]}`);
    if (!operation) {
      violations.push(`delivered a message nobody sent: ${delivery.line}`);
      continue;
    }
    tagged.push({ operation, delivery, sender: senderOf(delivery.line) });
  }

  const seen = new Set<string>();
  const lastSeq = new Map<string, number>();
  for (const { operation, delivery, sender } of tagged) {
    if (operation.reply?.startsWith('ERROR')) {
      const withinBound = options.lostReplyBoundMs !== undefined && operation.reply === 'ERROR SERVICE UNAVAILABLE'
        && delivery.at - operation.sentAt <= options.lostReplyBoundMs;
      if (!withinBound) violations.push(`delivered although answered "${operation.reply}": ${delivery.line} to client ${delivery.client}`);
    }
    const once = `${delivery.connection} ${operation.client}:${operation.seq}`;
    // The sender's own copy of a room message and a delivery to itself are one each too.
    if (seen.has(once)) violations.push(`delivered twice to connection ${delivery.connection}: ${delivery.line}`);
    seen.add(once);
    const pair = `${operation.client}->${delivery.connection}`;
    if ((lastSeq.get(pair) ?? 0) > operation.seq) {
      violations.push(`out of order from client ${operation.client} to connection ${delivery.connection}: ${delivery.line}`);
    }
    lastSeq.set(pair, Math.max(lastSeq.get(pair) ?? 0, operation.seq));
    if (sender.toLowerCase() !== operation.as?.toLowerCase()) {
      violations.push(`delivered as ${sender} from a client that believed it was ${operation.as}: ${delivery.line}`);
    }
  }
  violations.push(...impersonations(history, tagged));
  return violations;
}

interface Tenure {
  client: number;
  from: number;
  to: number;
}

/**
 * A delivery names a sender only if the sending connection held the name when the message was
 * accepted. A client may hold a name longer in its own view than on the server (its worker was
 * taken for dead and it was not told yet), so two views may overlap; the later grant is the
 * server's truth, and the earlier holder may get the name back once the later one lets go. A
 * violation: a message from the earlier holder, delivered, while a later holder held the name
 * from before it was sent until after it was accepted. (A message sent before such a grant and
 * accepted after it, as by a paused worker on waking, cannot be told apart from outside; the
 * paused-worker test asserts that case directly.)
 */
function impersonations(history: History, tagged: Tagged[]): string[] {
  const tenures = new Map<string, Tenure[]>();
  const open = new Map<number, { name: string; from: number }>();
  const end = (client: number, at: number) => {
    const holding = open.get(client);
    if (!holding) return;
    open.delete(client);
    const list = tenures.get(holding.name) ?? [];
    list.push({ client, from: holding.from, to: at });
    tenures.set(holding.name, list);
  };
  const events = [
    ...history.operations.filter((operation) => operation.reply !== undefined).map((operation) => ({ at: operation.repliedAt!, operation })),
    ...history.notices.map((notice) => ({ at: notice.at, notice })),
    ...history.closes.map((close) => ({ at: close.at, close })),
  ].sort((x, y) => x.at - y.at);
  for (const event of events) {
    if ('close' in event && event.close) {
      end(event.close.client, event.at);
      continue;
    }
    if ('notice' in event && event.notice) {
      if (/IS ALREADY TAKEN$/.test(event.notice.line)) end(event.notice.client, event.at);
      continue;
    }
    const { operation } = event as { operation: Operation };
    const [keyword, argument] = operation.command.split(/\s+/);
    if (operation.reply !== 'OK') continue;
    if (/^LOGIN$/i.test(keyword!)) open.set(operation.client, { name: argument!.toLowerCase(), from: event.at });
    if (/^(LOGOUT|QUIT)$/i.test(keyword!)) end(operation.client, event.at);
  }
  for (const client of open.keys()) end(client, Number.POSITIVE_INFINITY);
  const violations: string[] = [];
  for (const { operation, delivery, sender } of tagged) {
    const holders = tenures.get(sender.toLowerCase()) ?? [];
    const own = holders.find((tenure) => tenure.client === operation.client && tenure.from <= operation.sentAt && tenure.to >= operation.sentAt);
    if (!own) continue;
    // Accepted somewhere between sending and the first sign of it (its reply or its delivery).
    const acceptedBy = Math.min(operation.repliedAt ?? delivery.at, delivery.at);
    const newer = holders.find((tenure) => tenure.client !== operation.client && tenure.from > own.from
      && tenure.from < operation.sentAt && tenure.to > acceptedBy);
    if (newer) violations.push(`delivered as ${sender} while client ${newer.client} held that name: ${delivery.line}`);
  }
  return violations;
}

export interface SharedState {
  /** User name key → the login id holding it. */
  users: Map<string, string>;
  /** Room key → member keys. */
  rooms: Map<string, Set<string>>;
}

/** Every user and membership in Redis under a prefix, read with the key names of keys.ts (one Redis, or every primary of a Cluster). */
export async function readSharedState(redis: Redis | Cluster, prefix: string): Promise<SharedState> {
  const keys = new RedisKeys(prefix);
  const users = new Map<string, string>();
  // A Cluster client knows every primary only once it is ready.
  if (redis instanceof Cluster && redis.status !== 'ready') await new Promise((resolve) => redis.once('ready', resolve));
  for (const node of redis instanceof Cluster ? redis.nodes('master') : [redis]) {
    let cursor = '0';
    do {
      const [next, found] = await node.scan(cursor, 'MATCH', keys.user('*'), 'COUNT', 1000);
      for (const key of found) {
        const userKey = key.slice(prefix.length + 1, key.indexOf('}'));
        const login = await redis.hget(key, 'login');
        if (login !== null) users.set(userKey, login);
      }
      cursor = next;
    } while (cursor !== '0');
  }
  const rooms = new Map<string, Set<string>>();
  for (let shard = 0; shard < ROOM_SHARDS; shard++) {
    for (const roomKey of await redis.hkeys(keys.roomNames(shard))) {
      rooms.set(roomKey, new Set(await redis.hkeys(keys.roomMembers(roomKey))));
    }
  }
  return { users, rooms };
}

/**
 * No ghost and nobody missing: the names and memberships in Redis are exactly those the open
 * clients believe they hold.
 */
export function checkSharedState(state: SharedState, clients: TrackedClient[]): string[] {
  const violations: string[] = [];
  const believed = new Map<string, TrackedClient>();
  for (const client of clients) {
    if (client.open && client.name) believed.set(client.name.toLowerCase(), client);
  }
  for (const user of state.users.keys()) {
    if (!believed.has(user)) violations.push(`ghost name: ${user} is taken in Redis, but no open client holds it`);
  }
  for (const [user, client] of believed) {
    if (!state.users.has(user)) violations.push(`missing name: client ${client.id} is logged in as ${client.name}, Redis does not know it`);
  }
  for (const [room, members] of state.rooms) {
    for (const member of members) {
      if (!believed.get(member)?.rooms.has(room)) violations.push(`ghost membership: ${member} in ${room}`);
    }
  }
  for (const [user, client] of believed) {
    for (const room of client.rooms) {
      if (!state.rooms.get(room)?.has(user)) violations.push(`missing membership: ${client.name} believes it is in ${room}`);
    }
  }
  return violations;
}

/**
 * No deaf user: every logged-in client gets a DM, and every room member a room message, sent
 * now by a probe client. Returns the clients that did not hear.
 */
export async function checkNoDeafUser(clients: TrackedClient[], probe: TrackedClient, history: History, waitMs = 10_000): Promise<string[]> {
  const violations: string[] = [];
  const listeners = clients.filter((client) => client.open && client.name);
  const expected: { client: TrackedClient; text: string }[] = [];
  for (const client of listeners) {
    const text = `deaf-check ${client.name}`;
    const reply = await probe.command(`MSG ${client.name} ${text}`);
    if (reply !== 'OK') violations.push(`probe DM to ${client.name} answered ${reply}`);
    else expected.push({ client, text: `GOTUSERMSG ${probe.name} ${text}` });
  }
  const rooms = new Set(listeners.flatMap((client) => [...client.rooms]));
  for (const room of rooms) {
    const joined = await probe.command(`JOIN ${room}`);
    const reply = await probe.command(`MSG ${room} deaf-check room`);
    if (joined !== 'OK' || reply !== 'OK') {
      violations.push(`probe could not speak in ${room}: ${joined} / ${reply}`);
      continue;
    }
    for (const client of listeners.filter((listener) => listener.rooms.has(room))) {
      expected.push({ client, text: `deaf-check room` });
    }
    await probe.command(`PART ${room}`);
  }
  const deadline = performance.now() + waitMs;
  for (const { client, text } of expected) {
    const heard = () => history.deliveries.some((delivery) => delivery.client === client.id && delivery.line.endsWith(text)
      && (text.startsWith('GOT') ? delivery.line === text : true));
    while (!heard() && performance.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
    if (!heard()) violations.push(`deaf user: ${client.name} (client ${client.id}) did not get "${text}"`);
  }
  return violations;
}
