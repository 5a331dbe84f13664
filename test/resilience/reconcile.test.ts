import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import { loadConfig } from '../../src/config.js';
import { RedisKeys } from '../../src/backplane/redis/keys.js';
import { RedisBackplane } from '../../src/backplane/redis/index.js';
import type { SharedState } from '../../src/backplane/redis/shared-state.js';
import { registry } from '../../src/metrics.js';
import { loginAs, TestClient } from '../contract/backplane.contract.js';
import { startRedisProcess, type ProcessRedis } from '../helpers/redis.js';
import { waitFor } from '../helpers/wait.js';

// Reconcile against sessions that keep changing. Before login ids, a session that logged out
// and back in under the same connection id while a reconcile ran got a new Member object; the
// reconcile's identity check then failed and released the new login, because the logout
// script compared the connection only. Now every LOGIN has its own id and a reconcile runs with
// the gate closed, after the commands already admitted.

const PREFIX = 'race:';
const keys = new RedisKeys(PREFIX);

async function reconcileCount(): Promise<number> {
  const metric = (await registry.getMetricsAsJSON()).find((entry) => entry.name === 'chatline_reconciles_total');
  return metric?.values.reduce((sum, value) => sum + value.value, 0) ?? 0;
}

/** One worker's backplane (NODE_TTL_MS 2 s) on `redis`. */
function connectTo(redis: ProcessRedis): Promise<RedisBackplane> {
  return RedisBackplane.connect({
    redis: loadConfig({ REDIS_URL: redis.url, REDIS_PREFIX: PREFIX }).redis!,
    maxRoomsPerUser: 10, maxRoomMembers: 100, nodeTtlMs: 2000, log: pino({ level: 'silent' }),
  });
}

/** One worker's backplane on a Redis of its own. */
async function startBackplane(): Promise<{ redis: ProcessRedis; backplane: RedisBackplane }> {
  const redis = await startRedisProcess();
  return { redis, backplane: await connectTo(redis) };
}

describe('reconcile while sessions log out and in again', () => {
  let redis: ProcessRedis;
  let backplane: RedisBackplane;
  before(async () => ({ redis, backplane } = await startBackplane()));
  after(async () => {
    await backplane?.close();
    await redis?.stop();
  });

  it('never releases the newer login of a session that logged out and in during a reconcile', async () => {
    let alice = await loginAs(backplane, 'alice');
    await backplane.join(alice.member, '#room');
    const reconcilesBefore = await reconcileCount();
    let cuts = 0;
    let relogins = 0;
    const deadline = performance.now() + 6000;
    // Cut the worker's Redis connections again and again: each reconnect brings a reconcile.
    const cutter = (async () => {
      while (performance.now() < deadline) {
        await redis.client.call('CLIENT', 'KILL', 'TYPE', 'normal', 'SKIPME', 'yes');
        cuts++;
        await new Promise((resolve) => setTimeout(resolve, 300));
      }
    })();
    while (performance.now() < deadline) {
      await backplane.logout(alice.member);
      const again = new TestClient();
      const result = await backplane.login('alice', again).catch(() => 'unavailable' as const);
      if (result === 'unavailable' || result === 'taken') {
        // A refused or taken login while Redis is cut: wait until the name is ours again.
        await new Promise((resolve) => setTimeout(resolve, 50));
        const retry = await waitFor('alice to log in again', async () => {
          const client = new TestClient();
          const outcome = await backplane.login('alice', client).catch(() => undefined);
          if (!outcome || outcome === 'taken') return undefined;
          client.member = outcome.member;
          return client;
        }, 10_000);
        alice = retry;
      } else {
        again.member = result.member;
        alice = again;
      }
      relogins++;
      await backplane.join(alice.member, '#room').catch(() => {});
    }
    await cutter;
    assert.ok(cuts >= 5 && relogins >= 5, `${cuts} cuts, ${relogins} re-logins`);
    await waitFor('a reconcile after the cuts', async () => (await reconcileCount()) > reconcilesBefore);

    // The last login holds the name, in Redis and for deliveries.
    await waitFor('Redis to hold the last login', async () =>
      (await redis.client.hget(keys.user('alice'), 'login')) === alice.member.loginId, 10_000);
    const bob = await loginAs(backplane, 'bob');
    await backplane.sendToUser(bob.member, 'alice', 'still you?');
    assert.deepEqual(await alice.received(1), ['GOTUSERMSG bob still you?\r\n']);
  });
});

describe('a logout that lands while a renewal claims the name again', () => {
  let redis: ProcessRedis;
  let backplane: RedisBackplane;
  before(async () => ({ redis, backplane } = await startBackplane()));
  after(async () => {
    await backplane?.close();
    await redis?.stop();
  });

  it('ends the login for good: the client keeps its logout, the name and the room are free', async () => {
    const alice = await loginAs(backplane, 'alice');
    await backplane.join(alice.member, '#room');
    const loggedOutAs = alice.member;
    // The reconcile's own claim is where a client's LOGOUT can land: it is taken apart here so
    // that the logout runs exactly between the reconcile's look at the logins and its claim.
    const state = (backplane as unknown as { state: SharedState }).state;
    const claim = state.claim.bind(state);
    let logout: Promise<void> | undefined;
    state.claim = (member, workerId, deadline, replaces) => {
      if (replaces && !logout) logout = backplane.logout(loggedOutAs);
      return claim(member, workerId, deadline, replaces);
    };
    // Taken for dead: the next heartbeat finds its key gone and the worker renews its identity.
    const [workerId] = await redis.client.smembers(keys.workers());
    await redis.client.del(keys.workerAlive(workerId!));
    await waitFor('the renewal to reach the claim', () => logout !== undefined, 10_000);
    await logout;

    assert.equal(alice.member, loggedOutAs, 'the logged-out client was given its login back');
    await waitFor('the name to be free in Redis', async () => (await redis.client.exists(keys.user('alice'))) === 0, 10_000);
    assert.deepEqual(await redis.client.hgetall(keys.roomMembers('#room')), {});
    const again = await loginAs(backplane, 'alice');
    const bob = await loginAs(backplane, 'bob');
    await backplane.sendToUser(bob.member, 'alice', 'hello');
    assert.deepEqual(await again.received(1), ['GOTUSERMSG bob hello\r\n']);
    assert.deepEqual(alice.lines, [], 'the logged-out login still receives');
  });
});

describe('a session whose name record was lost, and the name taken by another login', () => {
  let redis: ProcessRedis;
  let first: RedisBackplane;
  let second: RedisBackplane;
  before(async () => {
    ({ redis, backplane: first } = await startBackplane());
    second = await connectTo(redis);
  });
  after(async () => {
    await Promise.all([first?.close(), second?.close()]);
    await redis?.stop();
  });

  it('leaves its rooms as well as its name, so the room holds live members only', async () => {
    const alice = await loginAs(first, 'alice');
    await first.join(alice.member, '#room');
    // What a Redis Cluster failover of the user's slot alone can do: the name record is lost,
    // the membership (in the room's slot) stays. Another login takes the name meanwhile.
    await redis.client.del(keys.user('alice'));
    const newAlice = await loginAs(second, 'alice');
    // Both workers reconnect, and reconcile.
    await redis.client.call('CLIENT', 'KILL', 'TYPE', 'normal', 'SKIPME', 'yes');
    await waitFor('the first worker to tell its alice the name is gone', () => alice.lost, 10_000);
    assert.deepEqual(await redis.client.hgetall(keys.roomMembers('#room')), {}, 'the old alice is still in #room');
    // The second worker reconnects on its own schedule.
    await waitFor('the second worker to be back', () => second.status().up, 10_000);
    await second.join(newAlice.member, '#room');
    const members = await redis.client.hgetall(keys.roomMembers('#room'));
    assert.deepEqual(Object.keys(members), ['alice']);
    assert.ok(members.alice!.startsWith(`${newAlice.member.loginId} `), `#room holds ${members.alice}`);
  });
});
