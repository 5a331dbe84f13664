import assert from 'node:assert/strict';
import { after, beforeEach, describe, it } from 'node:test';
import type { Backplane, Member } from '../../src/backplane/types.js';
import { waitFor } from '../helpers/wait.js';

// One suite, run against every Backplane implementation. A "node" is one worker's backplane;
// all nodes made by one harness share one chat state, as workers on one Redis do.

export interface TestNode {
  readonly backplane: Backplane;
  /** Lines delivered through this node, by connection id, in arrival order. */
  readonly inbox: Map<string, string[]>;
}

export interface BackplaneHarness {
  /** Fresh, empty shared state for the next test. */
  reset(): Promise<void>;
  node(maxRoomsPerUser?: number): Promise<TestNode>;
  close(): Promise<void>;
}

/** Records each delivered line on its own (a backplane may hand over several lines at once). */
export function recordingSink(inbox: Map<string, string[]>) {
  return (connectionId: string, delivered: string | Uint8Array) => {
    const text = typeof delivered === 'string' ? delivered : Buffer.from(delivered).toString('utf8');
    const lines = inbox.get(connectionId) ?? [];
    lines.push(...text.split(/(?<=\r\n)/));
    inbox.set(connectionId, lines);
  };
}

let nextConnection = 0;
const member = (user: string): Member => ({ connectionId: `test.${++nextConnection}`, user });
const received = (node: TestNode, who: Member) => node.inbox.get(who.connectionId) ?? [];

/** Waits until `who` has received `count` lines in total; returns them all. */
const receivedCount = (node: TestNode, who: Member, count: number) =>
  waitFor(`${count} deliveries to ${who.user}`, () => {
    const lines = received(node, who);
    return lines.length >= count ? lines : undefined;
  });

export function backplaneContract(name: string, makeHarness: () => Promise<BackplaneHarness>): void {
  describe(`backplane contract: ${name}`, () => {
    let harness: BackplaneHarness;
    let a: TestNode;
    let b: TestNode;

    beforeEach(async () => {
      harness ??= await makeHarness();
      await harness.reset();
      a = await harness.node(3);
      b = await harness.node(3);
    });
    after(async () => harness?.close());

    it('gives a name to one connection at a time, case-insensitively, across nodes', async () => {
      const alice = member('Alice');
      assert.equal(await a.backplane.login(alice), 'ok');
      assert.equal(await b.backplane.login(member('alice')), 'taken');
      assert.equal(await a.backplane.login(member('ALICE')), 'taken');
      await a.backplane.logout(alice);
      assert.equal(await b.backplane.login(member('aLiCe')), 'ok');
    });

    it('lets exactly one of many racing logins for one name win', async () => {
      const attempts = Array.from({ length: 20 }, (_, i) =>
        (i % 2 ? a : b).backplane.login(member(i % 3 ? 'racer' : 'RACER')));
      const results = await Promise.all(attempts);
      assert.equal(results.filter((r) => r === 'ok').length, 1);
      assert.equal(results.filter((r) => r === 'taken').length, 19);
    });

    it('ignores a late logout from a connection that no longer holds the name', async () => {
      const first = member('dora');
      await a.backplane.login(first);
      await a.backplane.logout(first);
      const second = member('Dora');
      assert.equal(await b.backplane.login(second), 'ok');
      await a.backplane.logout(first);
      assert.equal(await a.backplane.login(member('dora')), 'taken');
    });

    it('joins, refuses a second join, and caps rooms per user after the already-joined check', async () => {
      const alice = member('alice');
      await a.backplane.login(alice);
      assert.equal(await a.backplane.join(alice, '#One'), 'ok');
      assert.equal(await a.backplane.join(alice, '#one'), 'already-joined');
      assert.equal(await a.backplane.join(alice, '#two'), 'ok');
      assert.equal(await a.backplane.join(alice, '#three'), 'ok');
      assert.equal(await a.backplane.join(alice, '#four'), 'too-many-rooms');
      assert.equal(await a.backplane.join(alice, '#ONE'), 'already-joined');
      assert.equal(await a.backplane.part(alice, '#two'), 'ok');
      assert.equal(await a.backplane.join(alice, '#four'), 'ok');
    });

    it('parts a room once; an emptied room stops existing and takes its spelling with it', async () => {
      const alice = member('alice');
      const bob = member('bob');
      await a.backplane.login(alice);
      await b.backplane.login(bob);
      await a.backplane.join(alice, '#Lobby');
      assert.equal(await a.backplane.part(alice, '#LOBBY'), 'ok');
      assert.equal(await a.backplane.part(alice, '#lobby'), 'not-in-room');
      assert.equal(await a.backplane.part(alice, '#never'), 'not-in-room');
      assert.equal(await a.backplane.sendToRoom(alice, '#lobby', 'anyone?'), 'not-available');
      await b.backplane.join(bob, '#LOBBY');
      await a.backplane.join(alice, '#lobby');
      assert.deepEqual(await a.backplane.sendToRoom(alice, '#lobby', 'hi'), { roomName: '#LOBBY' });
      assert.deepEqual(await receivedCount(b, bob, 1), ['GOTROOMMSG alice #LOBBY hi\r\n']);
    });

    it('fans a room message out to the other members only, in the creator\'s spelling', async () => {
      const [alice, bob, carol, dave] = [member('Alice'), member('bob'), member('carol'), member('dave')];
      for (const [node, who] of [[a, alice], [b, bob], [a, carol], [b, dave]] as const) {
        await node.backplane.login(who);
      }
      await a.backplane.join(alice, '#Tea');
      await b.backplane.join(bob, '#tea');
      await a.backplane.join(carol, '#TEA');
      assert.deepEqual(await a.backplane.sendToRoom(alice, '#tEa', 'brewing  now'), { roomName: '#Tea' });
      // A DM after the room message is a marker: once it arrives, the room message had its chance.
      await a.backplane.sendToUser(alice, 'dave', 'marker');
      assert.deepEqual(await receivedCount(b, dave, 1), ['GOTUSERMSG Alice marker\r\n']);
      assert.deepEqual(await receivedCount(b, bob, 1), ['GOTROOMMSG Alice #Tea brewing  now\r\n']);
      assert.deepEqual(await receivedCount(a, carol, 1), ['GOTROOMMSG Alice #Tea brewing  now\r\n']);
      assert.deepEqual(received(a, alice), [], 'the sender gets its own copy locally, not through the backplane');
    });

    it('refuses a room message from a non-member or to a room that does not exist', async () => {
      const [alice, bob] = [member('alice'), member('bob')];
      await a.backplane.login(alice);
      await b.backplane.login(bob);
      await b.backplane.join(bob, '#club');
      assert.equal(await a.backplane.sendToRoom(alice, '#club', 'let me in'), 'not-available');
      assert.equal(await a.backplane.sendToRoom(alice, '#nowhere', 'hello?'), 'not-available');
      await a.backplane.sendToUser(alice, 'bob', 'marker');
      assert.deepEqual(await receivedCount(b, bob, 1), ['GOTUSERMSG alice marker\r\n']);
    });

    it('delivers a direct message to the connection that holds the name, on any node', async () => {
      const [alice, bob] = [member('Alice'), member('Bob')];
      await a.backplane.login(alice);
      await b.backplane.login(bob);
      assert.equal(await a.backplane.sendToUser(alice, 'BOB', 'hello  Bob'), 'ok');
      assert.deepEqual(await receivedCount(b, bob, 1), ['GOTUSERMSG Alice hello  Bob\r\n']);
      assert.equal(await a.backplane.sendToUser(alice, 'nobody', 'x'), 'not-found');
      await b.backplane.logout(bob);
      assert.equal(await a.backplane.sendToUser(alice, 'bob', 'gone?'), 'not-found');
      const newBob = member('bob');
      await a.backplane.login(newBob);
      await b.backplane.sendToUser(alice, 'bob', 'for the new bob');
      assert.deepEqual(await receivedCount(a, newBob, 1), ['GOTUSERMSG Alice for the new bob\r\n']);
      assert.deepEqual(received(b, bob), ['GOTUSERMSG Alice hello  Bob\r\n']);
    });

    it('answers each of many direct messages sent at once, to users on and off line', async () => {
      const [alice, bob, carol] = [member('alice'), member('bob'), member('carol')];
      await a.backplane.login(alice);
      await b.backplane.login(bob);
      await a.backplane.login(carol);
      const results = await Promise.all([
        a.backplane.sendToUser(alice, 'bob', 'one'),
        a.backplane.sendToUser(alice, 'nobody', 'lost'),
        a.backplane.sendToUser(alice, 'carol', 'two'),
        a.backplane.sendToUser(alice, 'BOB', 'three'),
        a.backplane.sendToUser(alice, 'ghost', 'lost too'),
      ]);
      assert.deepEqual(results, ['ok', 'not-found', 'ok', 'ok', 'not-found']);
      assert.deepEqual(await receivedCount(b, bob, 2), ['GOTUSERMSG alice one\r\n', 'GOTUSERMSG alice three\r\n']);
      assert.deepEqual(await receivedCount(a, carol, 1), ['GOTUSERMSG alice two\r\n']);
    });

    it('logs out of every room: the rooms forget the user and empty ones disappear', async () => {
      const [alice, bob] = [member('alice'), member('bob')];
      await a.backplane.login(alice);
      await b.backplane.login(bob);
      await a.backplane.join(alice, '#shared');
      await a.backplane.join(alice, '#solo');
      await b.backplane.join(bob, '#shared');
      await a.backplane.logout(alice);
      assert.equal(await b.backplane.sendToRoom(bob, '#solo', 'x'), 'not-available');
      assert.equal(await b.backplane.join(bob, '#solo'), 'ok');
      assert.deepEqual(await b.backplane.sendToRoom(bob, '#solo', 'mine now'), { roomName: '#solo' });
      const alice2 = member('alice');
      await a.backplane.login(alice2);
      await b.backplane.sendToRoom(bob, '#shared', 'alice left');
      await b.backplane.sendToUser(bob, 'alice', 'marker');
      assert.deepEqual(await receivedCount(a, alice2, 1), ['GOTUSERMSG bob marker\r\n']);
    });

    it('keeps one sender\'s messages in order, direct and through rooms', async () => {
      const [alice, bob] = [member('alice'), member('bob')];
      await a.backplane.login(alice);
      await b.backplane.login(bob);
      await a.backplane.join(alice, '#r');
      await b.backplane.join(bob, '#r');
      const sends: Promise<unknown>[] = [];
      for (let i = 0; i < 500; i++) {
        sends.push(i % 5 === 0 ? a.backplane.sendToRoom(alice, '#r', `m${i}`) : a.backplane.sendToUser(alice, 'bob', `m${i}`));
      }
      await Promise.all(sends);
      const lines = await receivedCount(b, bob, 500);
      assert.deepEqual(lines.map((line) => line.trim().split(' ').pop()), Array.from({ length: 500 }, (_, i) => `m${i}`));
    });
  });
}
