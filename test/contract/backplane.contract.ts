import assert from 'node:assert/strict';
import { after, beforeEach, describe, it } from 'node:test';
import { BackplaneUnavailableError } from '../../src/backplane/errors.js';
import type { Backplane, ClientHandle, Member } from '../../src/backplane/types.js';
import { waitFor } from '../helpers/wait.js';

// One suite, run against every Backplane implementation. A "node" is one worker's backplane;
// all nodes made by one harness share one chat state, as workers on one Redis do.

export interface NodeLimits {
  maxRoomsPerUser: number;
  maxRoomMembers: number;
}

export interface BackplaneHarness {
  /** Fresh, empty shared state for the next test. */
  reset(): Promise<void>;
  node(limits: NodeLimits): Promise<Backplane>;
  close(): Promise<void>;
}

/** A logged-in test client: what it was delivered, line by line, and what happened to its login. */
export class TestClient implements ClientHandle {
  readonly lines: string[] = [];
  lost = false;
  member!: Member;

  deliver(delivered: string | Uint8Array): void {
    const text = typeof delivered === 'string' ? delivered : Buffer.from(delivered).toString('utf8');
    this.lines.push(...text.split(/(?<=\r\n)/));
  }

  nameLost(): void {
    this.lost = true;
  }

  rebound(member: Member): void {
    this.member = member;
  }

  /** Waits until this client has received `count` lines in total; returns them all. */
  received(count: number): Promise<string[]> {
    return waitFor(`${count} deliveries to ${this.member.user}`, () => (this.lines.length >= count ? this.lines : undefined));
  }
}

/** Logs in, asserting the name was free. */
export async function loginAs(backplane: Backplane, user: string): Promise<TestClient> {
  const client = new TestClient();
  const result = await backplane.login(user, client);
  assert.notEqual(result, 'taken', `${user} was taken`);
  client.member = (result as { member: Member }).member;
  return client;
}

const notOwner = (error: unknown) => error instanceof BackplaneUnavailableError && error.reason === 'not-owner';

export function backplaneContract(name: string, makeHarness: () => Promise<BackplaneHarness>): void {
  describe(`backplane contract: ${name}`, () => {
    let harness: BackplaneHarness;
    let a: Backplane;
    let b: Backplane;

    beforeEach(async () => {
      harness ??= await makeHarness();
      await harness.reset();
      a = await harness.node({ maxRoomsPerUser: 3, maxRoomMembers: 3 });
      b = await harness.node({ maxRoomsPerUser: 3, maxRoomMembers: 3 });
    });
    after(async () => harness?.close());

    it('gives a name to one login at a time, case-insensitively, across nodes', async () => {
      const alice = await loginAs(a, 'Alice');
      assert.equal(await b.login('alice', new TestClient()), 'taken');
      assert.equal(await a.login('ALICE', new TestClient()), 'taken');
      await a.logout(alice.member);
      await loginAs(b, 'aLiCe');
    });

    it('gives each login its own id, even for the same name on the same node', async () => {
      const first = await loginAs(a, 'dora');
      await a.logout(first.member);
      const second = await loginAs(a, 'dora');
      assert.notEqual(second.member.loginId, first.member.loginId);
    });

    it('lets exactly one of many racing logins for one name win', async () => {
      const attempts = Array.from({ length: 20 }, (_, i) => (i % 2 ? a : b).login(i % 3 ? 'racer' : 'RACER', new TestClient()));
      const results = await Promise.all(attempts);
      assert.equal(results.filter((r) => r !== 'taken').length, 1);
      assert.equal(results.filter((r) => r === 'taken').length, 19);
    });

    it('ignores a late logout of a login that no longer holds the name', async () => {
      const first = await loginAs(a, 'dora');
      await a.logout(first.member);
      await loginAs(b, 'Dora');
      await a.logout(first.member);
      assert.equal(await a.login('dora', new TestClient()), 'taken');
    });

    it('refuses every command of a login that ended, without effect', async () => {
      const alice = await loginAs(a, 'alice');
      const bob = await loginAs(b, 'bob');
      await b.join(bob.member, '#club');
      await a.join(alice.member, '#club');
      await a.logout(alice.member);
      const stale = alice.member;
      await assert.rejects(a.join(stale, '#new'), notOwner);
      await assert.rejects(a.part(stale, '#club'), notOwner);
      await assert.rejects(a.sendToRoom(stale, '#club', 'ghost'), notOwner);
      await assert.rejects(a.sendToUser(stale, 'bob', 'ghost'), notOwner);
      await assert.rejects(a.roomMembers(stale, '#club'), notOwner);
      await assert.rejects(a.listRooms(stale), notOwner);
      // Nor may another node act for it.
      await assert.rejects(b.sendToUser(stale, 'bob', 'ghost'), notOwner);
      const who = await b.roomMembers(bob.member, '#club');
      assert.deepEqual(who, { roomName: '#club', members: ['bob'] });
      await b.sendToRoom(bob.member, '#club', 'marker');
      await b.sendToUser(bob.member, 'bob', 'own marker');
      assert.deepEqual(await bob.received(1), ['GOTUSERMSG bob own marker\r\n']);
    });

    it('joins, refuses a second join, and caps rooms per user after the already-joined check', async () => {
      const alice = (await loginAs(a, 'alice')).member;
      assert.equal(await a.join(alice, '#One'), 'ok');
      assert.equal(await a.join(alice, '#one'), 'already-joined');
      assert.equal(await a.join(alice, '#two'), 'ok');
      assert.equal(await a.join(alice, '#three'), 'ok');
      assert.equal(await a.join(alice, '#four'), 'too-many-rooms');
      assert.equal(await a.join(alice, '#ONE'), 'already-joined');
      assert.equal(await a.part(alice, '#two'), 'ok');
      assert.equal(await a.join(alice, '#four'), 'ok');
    });

    it('refuses a member past the room limit, and takes one again once someone left', async () => {
      const members = await Promise.all(['m1', 'm2', 'm3', 'm4'].map((user, i) => loginAs(i % 2 ? b : a, user)));
      const nodeOf = (i: number) => (i % 2 ? b : a);
      for (let i = 0; i < 3; i++) assert.equal(await nodeOf(i).join(members[i]!.member, '#small'), 'ok');
      assert.equal(await b.join(members[3]!.member, '#SMALL'), 'room-full');
      assert.deepEqual(await a.listRooms(members[0]!.member), [{ name: '#small', members: 3 }]);
      assert.equal(await a.part(members[0]!.member, '#small'), 'ok');
      assert.equal(await b.join(members[3]!.member, '#small'), 'ok');
    });

    it('parts a room once; an emptied room stops existing and takes its spelling with it', async () => {
      const alice = (await loginAs(a, 'alice')).member;
      const bob = await loginAs(b, 'bob');
      await a.join(alice, '#Lobby');
      assert.equal(await a.part(alice, '#LOBBY'), 'ok');
      assert.equal(await a.part(alice, '#lobby'), 'not-in-room');
      assert.equal(await a.part(alice, '#never'), 'not-in-room');
      assert.equal(await a.sendToRoom(alice, '#lobby', 'anyone?'), 'not-available');
      assert.equal(await a.roomMembers(alice, '#lobby'), 'not-available');
      await b.join(bob.member, '#LOBBY');
      await a.join(alice, '#lobby');
      assert.deepEqual(await a.sendToRoom(alice, '#lobby', 'hi'), { roomName: '#LOBBY' });
      assert.deepEqual(await bob.received(1), ['GOTROOMMSG alice #LOBBY hi\r\n']);
    });

    it('fans a room message out to the other members only, in the creator\'s spelling', async () => {
      const alice = await loginAs(a, 'Alice');
      const bob = await loginAs(b, 'bob');
      const carol = await loginAs(a, 'carol');
      const dave = await loginAs(b, 'dave');
      await a.join(alice.member, '#Tea');
      await b.join(bob.member, '#tea');
      await a.join(carol.member, '#TEA');
      assert.deepEqual(await a.sendToRoom(alice.member, '#tEa', 'brewing  now'), { roomName: '#Tea' });
      // A DM after the room message is a marker: once it arrives, the room message had its chance.
      await a.sendToUser(alice.member, 'dave', 'marker');
      assert.deepEqual(await dave.received(1), ['GOTUSERMSG Alice marker\r\n']);
      assert.deepEqual(await bob.received(1), ['GOTROOMMSG Alice #Tea brewing  now\r\n']);
      assert.deepEqual(await carol.received(1), ['GOTROOMMSG Alice #Tea brewing  now\r\n']);
      assert.deepEqual(alice.lines, [], 'the sender gets its own copy locally, not through the backplane');
    });

    it('refuses a room message from a non-member or to a room that does not exist', async () => {
      const alice = (await loginAs(a, 'alice')).member;
      const bob = await loginAs(b, 'bob');
      await b.join(bob.member, '#club');
      assert.equal(await a.sendToRoom(alice, '#club', 'let me in'), 'not-available');
      assert.equal(await a.sendToRoom(alice, '#nowhere', 'hello?'), 'not-available');
      await a.sendToUser(alice, 'bob', 'marker');
      assert.deepEqual(await bob.received(1), ['GOTUSERMSG alice marker\r\n']);
    });

    it('delivers a direct message to the login that holds the name, on any node', async () => {
      const alice = (await loginAs(a, 'Alice')).member;
      const bob = await loginAs(b, 'Bob');
      assert.equal(await a.sendToUser(alice, 'BOB', 'hello  Bob'), 'ok');
      assert.deepEqual(await bob.received(1), ['GOTUSERMSG Alice hello  Bob\r\n']);
      assert.equal(await a.sendToUser(alice, 'nobody', 'x'), 'not-found');
      await b.logout(bob.member);
      assert.equal(await a.sendToUser(alice, 'bob', 'gone?'), 'not-found');
      const newBob = await loginAs(a, 'bob');
      const carol = (await loginAs(b, 'carol')).member;
      await b.sendToUser(carol, 'bob', 'for the new bob');
      assert.deepEqual(await newBob.received(1), ['GOTUSERMSG carol for the new bob\r\n']);
      assert.deepEqual(bob.lines, ['GOTUSERMSG Alice hello  Bob\r\n']);
    });

    it('answers each of many direct messages sent at once, to users on and off line', async () => {
      const alice = (await loginAs(a, 'alice')).member;
      const bob = await loginAs(b, 'bob');
      const carol = await loginAs(a, 'carol');
      const results = await Promise.all([
        a.sendToUser(alice, 'bob', 'one'),
        a.sendToUser(alice, 'nobody', 'lost'),
        a.sendToUser(alice, 'carol', 'two'),
        a.sendToUser(alice, 'BOB', 'three'),
        a.sendToUser(alice, 'ghost', 'lost too'),
      ]);
      assert.deepEqual(results, ['ok', 'not-found', 'ok', 'ok', 'not-found']);
      assert.deepEqual(await bob.received(2), ['GOTUSERMSG alice one\r\n', 'GOTUSERMSG alice three\r\n']);
      assert.deepEqual(await carol.received(1), ['GOTUSERMSG alice two\r\n']);
    });

    it('logs out of every room: the rooms forget the user and empty ones disappear', async () => {
      const alice = (await loginAs(a, 'alice')).member;
      const bob = (await loginAs(b, 'bob')).member;
      await a.join(alice, '#shared');
      await a.join(alice, '#solo');
      await b.join(bob, '#shared');
      await a.logout(alice);
      assert.equal(await b.sendToRoom(bob, '#solo', 'x'), 'not-available');
      assert.deepEqual(await b.listRooms(bob), [{ name: '#shared', members: 1 }]);
      assert.equal(await b.join(bob, '#solo'), 'ok');
      assert.deepEqual(await b.sendToRoom(bob, '#solo', 'mine now'), { roomName: '#solo' });
      const alice2 = await loginAs(a, 'alice');
      await b.sendToRoom(bob, '#shared', 'alice left');
      await b.sendToUser(bob, 'alice', 'marker');
      assert.deepEqual(await alice2.received(1), ['GOTUSERMSG bob marker\r\n']);
    });

    it('lists a room\'s members once each, in display spelling, and every room with its size', async () => {
      const alice = (await loginAs(a, 'Alice')).member;
      const bob = (await loginAs(b, 'BOB')).member;
      const carol = (await loginAs(a, 'carol')).member;
      await a.join(alice, '#Tea');
      await b.join(bob, '#tea');
      await a.join(carol, '#Coffee');
      const who = await b.roomMembers(bob, '#TEA');
      assert.ok(who !== 'not-available');
      assert.equal(who.roomName, '#Tea');
      assert.deepEqual(who.members.sort(), ['Alice', 'BOB']);
      const rooms = (await a.listRooms(carol)).sort((x, y) => x.name.localeCompare(y.name));
      assert.deepEqual(rooms, [{ name: '#Coffee', members: 1 }, { name: '#Tea', members: 2 }]);
      assert.equal(await b.roomMembers(bob, '#nowhere'), 'not-available');
    });

    it('keeps one sender\'s messages in order, direct and through rooms', async () => {
      const alice = (await loginAs(a, 'alice')).member;
      const bob = await loginAs(b, 'bob');
      await a.join(alice, '#r');
      await b.join(bob.member, '#r');
      const sends: Promise<unknown>[] = [];
      for (let i = 0; i < 500; i++) {
        sends.push(i % 5 === 0 ? a.sendToRoom(alice, '#r', `m${i}`) : a.sendToUser(alice, 'bob', `m${i}`));
      }
      await Promise.all(sends);
      const lines = await bob.received(500);
      assert.deepEqual(lines.map((line) => line.trim().split(' ').pop()), Array.from({ length: 500 }, (_, i) => `m${i}`));
    });
  });
}
