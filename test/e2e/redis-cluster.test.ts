import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { RedisKeys, roomShard } from '../../src/backplane/redis/keys.js';
import { ChatProcess } from '../helpers/chat-process.js';
import { type LineClient, loggedIn } from '../helpers/client.js';
import { keySlot, RedisCluster } from '../helpers/redis-cluster.js';
import { protocolSuite } from './protocol.suite.js';

// chatline on a Redis Cluster of 3 primaries and 3 replicas: the whole protocol suite, and
// per-sender order when the recipient's slot and the room's slot live on different primaries.

describe('Redis Cluster: two instances × two workers on 3 primaries', () => {
  let cluster: RedisCluster;
  before(async () => { cluster = await RedisCluster.start(); });
  after(async () => cluster?.stop());

  const startPair = (prefix: string) => ChatProcess.startPair({
    REDIS_CLUSTER_NODES: cluster.seeds.join(','), REDIS_PREFIX: prefix, RATE_PER_SEC: '0',
  });

  protocolSuite('Redis Cluster', async () => {
    const instances = await startPair('proto:');
    return { ports: instances.map((chat) => chat.port), stop: async () => { await Promise.all(instances.map((chat) => chat.stop())); } };
  });

  describe('per-sender order across shards', () => {
    let instances: ChatProcess[];
    const clients: LineClient[] = [];
    const prefix = 'order:';
    before(async () => { instances = await startPair(prefix); });
    after(async () => {
      for (const client of clients) client.destroy();
      await Promise.all(instances.map((chat) => chat.stop()));
    });

    it('keeps DM, room message, DM in order when the recipient and the room sit on different primaries', async () => {
      const keys = new RedisKeys(prefix);
      const [recipientName] = await cluster.namesOnDifferentPrimaries(1, (i) => `reader${i}`);
      const recipientPrimary = await cluster.primaryForKey(keys.user(recipientName!));
      let room = '';
      for (let i = 0; !room; i++) {
        const candidate = `#shard${i}`;
        const primary = await cluster.primaryForSlot(keySlot(keys.roomMembers(candidate)));
        if (primary.port !== recipientPrimary.port) room = candidate;
      }
      assert.notEqual(keySlot(keys.user(recipientName!)), keySlot(`${prefix}{rooms:${roomShard(room)}}`));
      const sender = await loggedIn(instances[0]!.port, 'sender');
      const recipient = await loggedIn(instances[1]!.port, recipientName!);
      clients.push(sender, recipient);
      await sender.command(`JOIN ${room}`, 'OK');
      await recipient.command(`JOIN ${room}`, 'OK');
      // DM, room, DM, many times over, pipelined so lookups and publishes overlap.
      const rounds = 300;
      const commands: string[] = [];
      for (let i = 0; i < rounds; i++) commands.push(`MSG ${recipientName} ${3 * i}`, `MSG ${room} ${3 * i + 1}`, `MSG ${recipientName} ${3 * i + 2}`);
      sender.send(...commands);
      await sender.take(commands.length + rounds, 30_000);
      const got = await recipient.take(commands.length, 30_000);
      assert.deepEqual(got.map((line) => Number(line.slice(line.lastIndexOf(' ') + 1))), Array.from({ length: commands.length }, (_, i) => i));
    });
  });
});
