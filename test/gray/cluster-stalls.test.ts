import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { RedisKeys } from '../../src/backplane/redis/keys.js';
import { ChatProcess } from '../helpers/chat-process.js';
import { type LineClient, loggedIn } from '../helpers/client.js';
import { sample, scrape } from '../helpers/metrics.js';
import { type ClusterNode, keySlot, RedisCluster } from '../helpers/redis-cluster.js';
import { sleepRedis } from '../helpers/redis.js';

// A Redis Cluster node that stalls (DEBUG SLEEP) while a sender's room messages are on their
// way. On Cluster the sender's worker looks a room's members up on the room's node, then
// publishes to each member's node, one sender's messages in turn: a stalled member node holds
// that turn up, and a stalled room node fails the next message's lookup while it waits.

const PREFIX = 'stall:';
const keys = new RedisKeys(PREFIX);

describe('Redis Cluster: room messages while single nodes stall', () => {
  let cluster: RedisCluster;
  let chat: ChatProcess;
  const clients: LineClient[] = [];
  before(async () => {
    // Nodes count as failing only after 15 s: these stalls are not failovers.
    cluster = await RedisCluster.start({ nodeTimeoutMs: 15_000, args: ['--enable-debug-command', 'yes'] });
    chat = await ChatProcess.start({ REDIS_CLUSTER_NODES: cluster.seeds.join(','), REDIS_PREFIX: PREFIX, RATE_PER_SEC: '0' });
  });
  after(async () => {
    for (const client of clients) client.destroy();
    await chat?.stop();
    await cluster?.stop();
  });

  /** The first candidate whose key sits on a primary not among `taken`. */
  async function placedAwayFrom(taken: ClusterNode[], candidate: (i: number) => string, key: (name: string) => string) {
    for (let i = 0; i < 10_000; i++) {
      const name = candidate(i);
      const primary = await cluster.primaryForSlot(keySlot(key(name)));
      if (!taken.some((node) => node.port === primary.port)) return { name, primary };
    }
    throw new Error('no candidate on another primary');
  }

  it('answers each message for what happened to it, counts the member it could not reach, and keeps serving', async () => {
    // Three primaries: the member's user slot, one room's shard, the other room's shard.
    const member = await placedAwayFrom([], (i) => `member${i}`, (name) => keys.user(name));
    const quiet = await placedAwayFrom([member.primary], (i) => `#quiet${i}`, (room) => keys.roomMembers(room));
    const stalled = await placedAwayFrom([member.primary, quiet.primary], (i) => `#stalled${i}`, (room) => keys.roomMembers(room));

    const sender = await loggedIn(chat.port, 'sender');
    const reader = await loggedIn(chat.port, member.name);
    clients.push(sender, reader);
    await sender.command(`JOIN ${quiet.name}`, 'OK');
    await reader.command(`JOIN ${quiet.name}`, 'OK');
    await sender.command(`JOIN ${stalled.name}`, 'OK');
    const before = sample(await scrape(chat.healthPort), 'chatline_deliveries_dropped_total', { reason: 'unpublished' });

    // The member's node sleeps longer than a reply is waited for; the second room's node long
    // enough that its lookup runs past its deadline, while the first message still waits.
    const memberAsleep = await sleepRedis(`redis://${member.primary.address}`, 4);
    const roomAsleep = await sleepRedis(`redis://${stalled.primary.address}`, 2);
    sender.send(`MSG ${quiet.name} while the member sleeps`, `MSG ${stalled.name} while its room sleeps`);
    // The first was accepted (its lookup answered in time; the sender gets its own copy), its
    // publish to the member got no answer. The second's lookup ran past its deadline: no
    // effect, and said so.
    assert.deepEqual(await sender.take(3, 15_000),
      ['OK', `GOTROOMMSG sender ${quiet.name} while the member sleeps`, 'ERROR SERVICE UNAVAILABLE']);
    await Promise.all([memberAsleep.awake, roomAsleep.awake]);
    const after = sample(await scrape(chat.healthPort), 'chatline_deliveries_dropped_total', { reason: 'unpublished' });
    assert.equal(after - before, 1, 'the member the first message could not reach is counted');

    // The worker lived through it: the same connections go on chatting.
    await sender.command('PING', 'PONG');
    sender.send(`MSG ${quiet.name} awake again`);
    assert.deepEqual(await sender.take(2), ['OK', `GOTROOMMSG sender ${quiet.name} awake again`]);
    const lines = await reader.take(1, 10_000);
    // The stalled publish may still have landed when the node woke (at most once): skip it.
    const last = lines.at(-1) === `GOTROOMMSG sender ${quiet.name} while the member sleeps` ? (await reader.take(1, 10_000))[0] : lines[0];
    assert.equal(last, `GOTROOMMSG sender ${quiet.name} awake again`);
  });
});
