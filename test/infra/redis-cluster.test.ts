import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { keySlot, RedisCluster, SLOT_COUNT } from '../helpers/redis-cluster.js';
import { waitFor } from '../helpers/wait.js';

// What a Cluster test relies on: six real nodes, three primaries covering every slot, names
// that really land on different primaries, and failover, kill and restart that leave a cluster
// a plain ioredis Cluster client keeps using.

describe('Redis Cluster helper', () => {
  let cluster: RedisCluster;
  before(async () => { cluster = await RedisCluster.start(); });
  after(async () => { await cluster?.stop(); });

  it('runs 3 primaries with a replica each, every slot served, on their own bus ports', async () => {
    const primaries = await cluster.primaries();
    const replicas = await cluster.replicas();
    assert.equal(primaries.length, 3);
    assert.equal(replicas.length, 3);
    const replicasOfEach = await Promise.all(primaries.map((primary) => cluster.replicasOf(primary)));
    assert.deepEqual(replicasOfEach.map((set) => set.length), [1, 1, 1]);
    assert.deepEqual(new Set(replicasOfEach.flat()), new Set(replicas));
    assert.deepEqual(cluster.seeds, cluster.nodes.map((node) => `127.0.0.1:${node.port}`));
    for (const node of cluster.nodes) {
      assert.equal((await node.admin.config('GET', 'cluster-port') as string[])[1], String(node.busPort));
      assert.match(await node.admin.cluster('INFO') as string, /cluster_slots_ok:16384/);
    }
    for (const slot of [0, 5000, SLOT_COUNT - 1]) assert.ok(primaries.includes(await cluster.primaryForSlot(slot)));
  });

  it('finds names whose hash tags sit on different primaries, as Redis itself places them', async () => {
    const names = await cluster.namesOnDifferentPrimaries(3);
    const owners = await Promise.all(names.map((name) => cluster.primaryForKey(`{${name}}:user`)));
    assert.equal(new Set(owners).size, 3);
    for (const [i, name] of names.entries()) {
      const key = `{${name}}:user`;
      assert.equal(keySlot(key), await owners[i]!.admin.cluster('KEYSLOT', key));
      // The owner takes the write; another primary redirects it.
      assert.equal(await owners[i]!.admin.set(key, name), 'OK');
      await assert.rejects(owners[(i + 1) % 3]!.admin.set(key, name), /MOVED/);
    }
  });

  it('fails a primary over gracefully: roles swap, data stays, clients and sharded subscribers follow', async () => {
    const [name] = await cluster.namesOnDifferentPrimaries(1, (i) => `failover${i}`);
    const key = `{${name}}:user`;
    const channel = `{${name}}:deliveries`;
    const client = cluster.connect();
    const subscriber = cluster.connect({ shardedSubscribers: true });
    const received: string[] = [];
    subscriber.on('smessage', (_channel: string, message: string) => received.push(message));
    await subscriber.ssubscribe(channel);
    await client.set(key, 'before');

    const oldPrimary = await cluster.primaryForKey(key);
    const newPrimary = await cluster.failover(oldPrimary);
    assert.notEqual(newPrimary, oldPrimary);
    assert.equal(await cluster.primaryForKey(key), newPrimary);
    assert.deepEqual(await cluster.replicasOf(newPrimary), [oldPrimary]);
    assert.equal((await newPrimary.admin.role())[0], 'master');
    assert.equal((await oldPrimary.admin.role())[0], 'slave');

    assert.equal(await client.get(key), 'before');
    assert.equal(await client.set(key, 'after'), 'OK');
    await waitFor('the sharded subscriber to hear the new primary', async () => {
      await client.spublish(channel, 'after failover');
      return received.includes('after failover');
    });
  });

  it('replaces a killed primary with its replica, and takes the node back as a replica', async () => {
    const [name] = await cluster.namesOnDifferentPrimaries(1, (i) => `kill${i}`);
    const key = `{${name}}:user`;
    const client = cluster.connect();
    await client.set(key, 'before');
    const victim = await cluster.primaryForKey(key);
    const pid = victim.pid!;

    const promoted = await cluster.kill(victim);
    assert.ok(promoted);
    assert.equal(victim.alive, false);
    assert.equal(alive(pid), false);
    assert.equal(await cluster.primaryForKey(key), promoted);
    await waitFor('the client to write through the promoted replica', async () => (await client.set(key, 'after').catch(() => null)) === 'OK');
    assert.equal(await client.get(key), 'after');

    await cluster.restart(victim);
    assert.deepEqual(await cluster.replicasOf(promoted), [victim]);
    assert.equal(await client.get(key), 'after');
  });

  it('kills a replica without the cluster going down', async () => {
    const [replica] = await cluster.replicas();
    assert.equal(await cluster.kill(replica!), undefined);
    assert.equal((await cluster.primaries()).length, 3);
    await cluster.restart(replica!);
    assert.equal((await cluster.replicas()).length, 3);
  });

  it('stop leaves no node running', async () => {
    const pids = cluster.nodes.map((node) => node.pid!);
    await cluster.stop();
    assert.deepEqual(pids.filter(alive), []);
    const plain = new Redis(cluster.nodes[0]!.port, '127.0.0.1', { lazyConnect: true, retryStrategy: () => null });
    plain.on('error', () => {});
    await assert.rejects(plain.connect());
  });
});

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
