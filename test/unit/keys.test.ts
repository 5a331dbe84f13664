import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import calculateSlot from 'cluster-key-slot';
import { RedisKeys, ROOM_SHARDS, roomShard } from '../../src/backplane/redis/keys.js';

// On Redis Cluster every script may touch one slot only, and may publish only to a shard
// channel of that slot (Redis lets a cross-slot SPUBLISH through when both slots happen to sit
// on one node, so a test against a live cluster could pass by luck). Here, by construction:
// whatever goes into one script call hashes to one slot, for any name.

const keys = new RedisKeys('chat:');
const sameSlot = (...names: string[]) => new Set(names.map((name) => calculateSlot(name))).size === 1;
const users = ['alice', 'Bob', 'x.y-z_', 'a'.repeat(32)].map((name) => name.toLowerCase());
const rooms = ['#lobby', '#a', `#${'r'.repeat(64)}`, '#x.y-z_'];

describe('Redis keys and channels', () => {
  it('keeps a user\'s hash, room index and inbox in one slot', () => {
    for (const user of users) assert.ok(sameSlot(keys.user(user), keys.userRooms(user), keys.userInbox(user)), user);
  });

  it('keeps a room\'s members and feed in its shard\'s slot, with the shard\'s index', () => {
    for (const room of rooms) {
      const [names, sizes] = keys.roomIndex(room);
      assert.ok(sameSlot(keys.roomMembers(room), keys.roomFeed(room), names, sizes), room);
    }
  });

  it('keeps a worker\'s heartbeat, sessions, reaper lock and probe channel in one slot', () => {
    assert.ok(sameSlot(keys.workerAlive('w1'), keys.workerSessions('w1'), keys.workerReaper('w1'), keys.workerProbe('w1')));
  });

  it('spreads rooms over every shard, the same way on every worker', () => {
    const shards = new Set(Array.from({ length: 5000 }, (_, i) => roomShard(`#room${i}`)));
    assert.equal(shards.size, ROOM_SHARDS);
    assert.equal(roomShard('#lobby'), roomShard('#lobby'));
    assert.ok(roomShard('#lobby') >= 0 && roomShard('#lobby') < ROOM_SHARDS);
  });
});
