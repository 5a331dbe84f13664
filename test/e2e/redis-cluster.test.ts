import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { RedisKeys, roomShard } from '../../src/backplane/redis/keys.js';
import { ChatProcess } from '../helpers/chat-process.js';
import { type LineClient, loggedIn } from '../helpers/client.js';
import { sample, scrape } from '../helpers/metrics.js';
import { keySlot, RedisCluster } from '../helpers/redis-cluster.js';
import { RoomMember } from '../helpers/room-member.js';
import { waitFor } from '../helpers/wait.js';
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

    it('keeps DMs, room message, DM in order when the recipient and the room sit on different primaries', async () => {
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
      // DMs, room, DM, many times over, pipelined so lookups and publishes overlap and the
      // DMs a sender sends while its turn is taken go out together.
      const rounds = 200;
      const round = (i: number) => [`${recipientName}`, `${recipientName}`, `${recipientName}`, room, `${recipientName}`]
        .map((target, j) => `MSG ${target} ${5 * i + j}`);
      const commands = Array.from({ length: rounds }, (_, i) => round(i)).flat();
      sender.send(...commands);
      await sender.take(commands.length + rounds, 30_000);
      const got = await recipient.take(commands.length, 30_000);
      assert.deepEqual(got.map((line) => Number(line.slice(line.lastIndexOf(' ') + 1))), Array.from({ length: commands.length }, (_, i) => i));
    });

    it('brings every message of a steady stream to each of 5000 members, in order, without a subscriber cut', async () => {
      const members: RoomMember[] = [];
      for (let i = 0; i < 5000; i += 250) {
        members.push(...await Promise.all(Array.from({ length: 250 }, (_, j) => RoomMember.join(instances[(i + j) % 2]!.port, `big${i + j}`, '#huge'))));
      }
      const announcer = await loggedIn(instances[0]!.port, 'announcer');
      clients.push(announcer);
      await announcer.command('JOIN #huge', 'OK');
      const resubscribes = async () => Promise.all(instances.map(async (chat) => sample(await scrape(chat.healthPort), 'chatline_subscriber_resubscribes_total')));
      const before = await resubscribes();
      const messages = 20;
      for (let i = 0; i < messages; i++) {
        announcer.send(`MSG #huge ${i}`);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      await announcer.take(2 * messages, 60_000);
      await waitFor('every member to get every message', () => members.every((member) => member.numbers.length >= messages), 60_000);
      for (const member of members) assert.deepEqual(member.numbers, Array.from({ length: messages }, (_, i) => i));
      assert.deepEqual(await resubscribes(), before, 'no subscriber was cut');
      for (const member of members) member.socket.destroy();
    });
  });
});
