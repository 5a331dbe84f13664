import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Redis } from 'ioredis';
import { RedisSentinel } from '../helpers/redis-sentinel.js';
import { waitFor } from '../helpers/wait.js';

// What a Sentinel test relies on: three sentinels that agree on a primary and its replica, a
// killed primary replaced, a killed node taken back, SENTINEL FAILOVER moving the primary, and a
// Sentinel-configured ioredis client (RESP2, like chatline) that follows each move.

const NAME = 'chatline-infra';

describe('Redis Sentinel helper', () => {
  let sentinel: RedisSentinel;
  let client: Redis;

  /** The port of the Redis the client's connection really reaches. */
  async function clientPort(): Promise<number> {
    return Number(/tcp_port:(\d+)/.exec(await client.info('server'))?.[1]);
  }

  before(async () => {
    sentinel = await RedisSentinel.start(NAME);
    // failoverDetector: without it ioredis 6 stays on the old primary after SENTINEL FAILOVER
    // until Sentinel demotes it and kills its clients (8–11 s later with Redis' own timing), and
    // what it writes meanwhile is lost when the old primary resyncs.
    client = sentinel.connect({ failoverDetector: true });
  });
  after(async () => { await sentinel?.stop(); });

  it('starts a primary and a replica watched by three sentinels that see each other', async () => {
    const [primary, replica] = sentinel.dataNodes;
    assert.equal(await sentinel.currentPrimary(), primary);
    assert.equal((await primary.admin.role())[0], 'master');
    assert.equal((await replica.admin.role())[0], 'slave');
    assert.deepEqual(sentinel.sentinels, sentinel.sentinelNodes.map((node) => `127.0.0.1:${node.port}`));
    for (const node of sentinel.sentinelNodes) {
      const master = await node.admin.call('SENTINEL', 'MASTER', NAME) as string[];
      assert.equal(master[master.indexOf('num-other-sentinels') + 1], '2');
      assert.equal(master[master.indexOf('num-slaves') + 1], '1');
    }
    assert.equal(await client.set('k', 'start'), 'OK');
    assert.equal(await clientPort(), primary.port);
  });

  it('replaces a killed primary, and a client follows', async () => {
    // Replication is asynchronous: a write the replica has not got yet dies with the primary.
    assert.equal(await client.call('WAIT', '1', '5000'), 1);
    const old = await sentinel.currentPrimary();
    const pid = old.pid!;
    const next = await sentinel.killPrimary();
    assert.notEqual(next, old);
    assert.equal(old.alive, false);
    assert.throws(() => process.kill(pid, 0), 'the old primary process is gone');
    assert.equal(await sentinel.currentPrimary(), next);
    await waitFor('the client to reach the new primary', async () => (await clientPort().catch(() => 0)) === next.port);
    assert.equal(await client.get('k'), 'start');
    assert.equal(await client.set('k', 'after kill'), 'OK');

    await sentinel.restart(old);
    assert.equal((await old.admin.role())[0], 'slave');
    await waitFor('the restarted node to catch up', async () => (await old.admin.get('k')) === 'after kill');
  });

  it('moves the primary with SENTINEL FAILOVER, and a client follows', async () => {
    // SENTINEL FAILOVER does not wait for the replica to catch up either.
    assert.equal(await client.call('WAIT', '1', '5000'), 1);
    const old = await sentinel.currentPrimary();
    const next = await sentinel.failover();
    assert.notEqual(next, old);
    assert.equal(await sentinel.currentPrimary(), next);
    assert.equal((await next.admin.role())[0], 'master');
    await waitFor('the client to reach the new primary', async () => (await clientPort().catch(() => 0)) === next.port);
    assert.equal(await client.get('k'), 'after kill');
    assert.equal(await client.set('k', 'after failover'), 'OK');
  });

  it('fails back once the sentinels have demoted the old primary (8–11 s after a failover)', async () => {
    const old = await sentinel.currentPrimary();
    const previous = sentinel.dataNodes.find((node) => node !== old)!;
    await sentinel.waitUntilReplica(previous);
    assert.equal((await previous.admin.role())[0], 'slave');
    assert.equal(await client.call('WAIT', '1', '5000'), 1);
    const next = await sentinel.failover();
    assert.equal(await sentinel.currentPrimary(), next);
    await waitFor('the client to reach the new primary', async () => (await clientPort().catch(() => 0)) === next.port);
    assert.equal(await client.get('k'), 'after failover');
  });

  it('stop leaves no process running', async () => {
    const pids = [...sentinel.dataNodes, ...sentinel.sentinelNodes].map((node) => node.pid!);
    await sentinel.stop();
    for (const pid of pids) assert.throws(() => process.kill(pid, 0), `process ${pid} is gone`);
  });
});
