import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { RedisKeys } from '../../src/backplane/redis/keys.js';
import { GrayCluster } from '../helpers/gray-cluster.js';
import { sample, scrape } from '../helpers/metrics.js';
import type { TrackedClient } from '../helpers/tracked-client.js';
import { waitFor } from '../helpers/wait.js';

// Failovers of the Redis topologies chatline runs on, each judged by the same checker as the
// gray failures: no ghost, no deaf user, no duplicate, per-sender order, no error answer that
// had an effect (a failover loses replies with the connection: within the documented bound).
//   Redis Cluster: a graceful CLUSTER FAILOVER, and kill -9 of a primary.
//   Sentinel: SENTINEL FAILOVER, and kill -9 of the primary.

// Longer than a cluster's or sentinel's failover (2–4 s here), so no worker loses its lease to one.
const NODE_TTL_MS = 10_000;
const LOST_REPLY_BOUND_MS = 1500;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Clients chatting while a failover happens: DMs to each other and messages in their room. */
function chatter(clients: TrackedClient[], names: string[], until: () => boolean): Promise<void[]> {
  return Promise.all(clients.map(async (client, i) => {
    while (!until()) {
      await client.command(`MSG ${names[(i + 1) % names.length]} {tag}`);
      await client.command('MSG #talk {tag}');
      await sleep(20);
    }
  }));
}

describe('Redis topology failovers', () => {
  const clusters: GrayCluster[] = [];
  after(async () => { await Promise.all(clusters.map((cluster) => cluster.stop())); });

  /** Users whose names sit on every primary, half on each instance, all in #talk. */
  async function population(cluster: GrayCluster, names: string[]): Promise<TrackedClient[]> {
    const clients: TrackedClient[] = [];
    for (const [i, name] of names.entries()) clients.push(await cluster.member(name, i, ['#talk']));
    return clients;
  }

  it('Redis Cluster, graceful CLUSTER FAILOVER: delivery resumes within seconds, every invariant holds', async () => {
    const cluster = await GrayCluster.start({ prefix: 'cfail:', nodeTtlMs: NODE_TTL_MS, topology: 'cluster' });
    clusters.push(cluster);
    const redis = cluster.redisCluster!;
    const names = await redis.namesOnDifferentPrimaries(3, (i) => `u${i}`);
    const clients = await population(cluster, [...names, 'u-extra']);
    const victim = await redis.primaryForKey(new RedisKeys('cfail:').user(names[0]!));
    let done = false;
    const talking = chatter(clients, [...names, 'u-extra'], () => done);
    await sleep(500);
    const failedOverAt = performance.now();
    await redis.failover(victim);
    // Delivery to the user on the failed-over primary works again within a bound.
    const resumedAfterMs = await waitFor('a DM to the failed-over slot to be delivered again', async () => {
      const probe = clients[1]!;
      const reply = await probe.command(`MSG ${names[0]} resumed {tag}`);
      return reply === 'OK' ? performance.now() - failedOverAt : undefined;
    }, 15_000);
    assert.ok(resumedAfterMs < 10_000, `resumed after ${Math.round(resumedAfterMs)} ms`);
    done = true;
    await talking;
    assert.deepEqual(await cluster.check(undefined, { lostReplyBoundMs: LOST_REPLY_BOUND_MS }), []);
  });

  it('Redis Cluster, kill -9 of a primary: SERVICE UNAVAILABLE only for its slots, then every invariant holds', async () => {
    const cluster = await GrayCluster.start({ prefix: 'ckill:', nodeTtlMs: NODE_TTL_MS, topology: 'cluster' });
    clusters.push(cluster);
    const redis = cluster.redisCluster!;
    const keys = new RedisKeys('ckill:');
    const names = await redis.namesOnDifferentPrimaries(3, (i) => `k${i}`);
    const clients = await population(cluster, names);
    const victim = await redis.primaryForKey(keys.user(names[0]!));
    // The other users' slots, and #talk's shard, must not sit on the victim for the check below.
    const others = [];
    for (const name of names.slice(1)) {
      if ((await redis.primaryForKey(keys.user(name))).port !== victim.port) others.push(name);
    }
    const killing = redis.kill(victim);
    await sleep(300);
    // While the victim is down and not yet replaced: DMs to users elsewhere still work.
    for (const name of others) {
      const sender = clients.find((client) => client.name !== name && client.name !== names[0])!;
      assert.equal(await sender.command(`MSG ${name} {tag}`), 'OK', `DM to ${name}, whose slot is up`);
    }
    const toVictim = await clients[1]!.command(`MSG ${names[0]} {tag}`);
    assert.ok(toVictim === 'OK' || toVictim === 'ERROR SERVICE UNAVAILABLE', `DM to the killed slot: ${toVictim}`);
    await killing;
    await waitFor('DMs to the killed primary\'s slots to work again', async () =>
      (await clients[1]!.command(`MSG ${names[0]} {tag}`)) === 'OK', 15_000);
    assert.deepEqual(await cluster.check(undefined, { lostReplyBoundMs: LOST_REPLY_BOUND_MS }), []);
  });

  for (const how of ['SENTINEL FAILOVER', 'kill -9 of the primary'] as const) {
    it(`Sentinel, ${how}: the workers follow the new primary, reconcile, and every invariant holds`, async () => {
      const cluster = await GrayCluster.start({ prefix: 'sent:', nodeTtlMs: NODE_TTL_MS, topology: 'sentinel' });
      clusters.push(cluster);
      const names = ['s0', 's1', 's2', 's3'];
      const clients = await population(cluster, names);
      let done = false;
      const talking = chatter(clients, names, () => done);
      await sleep(500);
      const reconcilesBefore = await Promise.all(cluster.instances.map(async (chat) => sample(await scrape(chat.healthPort), 'chatline_reconciles_total')));
      if (how === 'SENTINEL FAILOVER') await cluster.sentinel!.failover();
      else await cluster.sentinel!.killPrimary();
      await waitFor('every worker to reconcile against the new primary', async () => {
        const now = await Promise.all(cluster.instances.map(async (chat) => sample(await scrape(chat.healthPort), 'chatline_reconciles_total')));
        return now.every((count, i) => count >= reconcilesBefore[i]! + 2);
      }, 20_000);
      await waitFor('a DM to go through', async () => (await clients[0]!.command('MSG s1 after {tag}')) === 'OK', 15_000);
      done = true;
      await talking;
      assert.deepEqual(await cluster.check(undefined, { lostReplyBoundMs: LOST_REPLY_BOUND_MS }), []);
    });
  }
});
