import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { RedisKeys } from '../../src/backplane/redis/keys.js';
import { GrayCluster } from '../helpers/gray-cluster.js';
import { sleepRedis } from '../helpers/redis.js';
import type { TrackedClient } from '../helpers/tracked-client.js';

// Redis stalls with every connection up (DEBUG SLEEP: a fork for a snapshot, an fsync, a slow
// script look the same from outside). Findings 1–3 of the gray-failure issue, reproduced, then
// judged by the checker: no ghost, no deaf user, and an error answer means no effect.

const NODE_TTL_MS = 4000;

describe('Redis stalls while its connections stay up', () => {
  const clusters: GrayCluster[] = [];
  const start = async (prefix: string, nodeTtlMs = NODE_TTL_MS) => {
    const cluster = await GrayCluster.start({ prefix, nodeTtlMs });
    clusters.push(cluster);
    return cluster;
  };
  after(async () => { await Promise.all(clusters.map((cluster) => cluster.stop())); });

  it('finding 1: a LOGOUT during a stall never leaves a deaf user', async () => {
    const cluster = await start('deaf:');
    const a = await cluster.member('a', 0, ['#r']);
    const b = await cluster.member('b', 1, ['#r']);
    const { awake } = await sleepRedis(cluster.redis.url, 2);
    const logout = await b.command('LOGOUT');
    await awake;
    // Whatever b was told, b's name and channel must agree with it once things settle.
    assert.ok(logout === 'OK' || logout === 'ERROR SERVICE UNAVAILABLE', `LOGOUT answered ${logout}`);
    assert.deepEqual(await cluster.check(), []);
    const subscribers = await cluster.redis.client.pubsub('NUMSUB', new RedisKeys('deaf:').userInbox('b')) as [string, number];
    assert.equal(subscribers[1], b.name ? 1 : 0, 'subscribed exactly while logged in');
    await a.command('MSG b after');
  });

  it('finding 2: logins and logouts cut by a stall leave no name taken by a closed connection', async () => {
    const cluster = await start('ghost:');
    const loops: Promise<void>[] = [];
    let sleeping: Promise<{ awake: Promise<void> }> | undefined;
    for (let i = 0; i < 60; i++) {
      if (i === 30) sleeping = sleepRedis(cluster.redis.url, 1);
      loops.push((async () => {
        const client = await cluster.client(i % 2);
        await client.command(`LOGIN g${i}`);
        await client.command('LOGOUT');
        client.close();
      })());
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    await Promise.all(loops);
    await (await sleeping!).awake;
    assert.deepEqual(await cluster.check(), []);
    // Every name is free again, for good.
    const again = await cluster.client(1);
    for (let i = 0; i < 60; i++) {
      assert.equal(await again.command(`LOGIN g${i}`), 'OK', `g${i}`);
      await again.command('LOGOUT');
    }
  });

  it('finding 3: a DM, a room message or a JOIN answered SERVICE UNAVAILABLE during a stall has no effect, ever', async () => {
    // A lease longer than the stall, so what is tested is the commands' own deadline.
    const cluster = await start('effect:', 10_000);
    const sender = await cluster.member('sender', 0, ['#r']);
    const others: TrackedClient[] = [];
    for (let i = 0; i < 4; i++) others.push(await cluster.member(`other${i}`, i % 2, ['#r']));
    // Longer than a worker waits for an answer (3 s): commands sent early in the stall are
    // answered SERVICE UNAVAILABLE while still queued in Redis, and Redis runs them on waking,
    // past their deadline. Commands sent late in the stall are answered late, with their outcome.
    const { awake } = await sleepRedis(cluster.redis.url, 4.5);
    const commands: Promise<unknown>[] = [];
    for (let i = 0; i < 20; i++) {
      commands.push(sender.command(`MSG other${i % 4} {tag}`));
      commands.push(others[i % 4]!.command(`JOIN #late${i}`));
      await new Promise((resolve) => setTimeout(resolve, 200));
      commands.push(sender.command('MSG #r {tag}'));
    }
    await Promise.all(commands);
    await awake;
    const replies = cluster.history.operations.map((operation) => operation.reply);
    assert.ok(replies.includes('ERROR SERVICE UNAVAILABLE'), 'some commands met the stall');
    assert.ok(replies.filter((reply) => reply === 'OK').length > 10, 'and the cluster answered the rest');
    assert.deepEqual(await cluster.check(), []);
  });
});
