import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { RedisKeys } from '../../src/backplane/redis/keys.js';
import { ChatProcess } from '../helpers/chat-process.js';
import { type LineClient, loggedIn, loggedInOnceFree } from '../helpers/client.js';
import { chatStateKeys, startRedis, type TestRedis } from '../helpers/redis.js';
import { waitFor } from '../helpers/wait.js';

// kill -9 of one worker: its names and memberships come free cluster-wide within NODE_TTL_MS,
// the primary starts a new worker, and everyone else carries on.

const NODE_TTL_MS = 4000;
const USERS = 50;

describe('a worker killed with SIGKILL', () => {
  let redis: TestRedis;
  let victim: ChatProcess;
  let survivor: ChatProcess;
  const clients: LineClient[] = [];

  before(async () => {
    redis = await startRedis();
    const env = { REDIS_URL: redis.url, REDIS_PREFIX: 'crash:', NODE_TTL_MS: String(NODE_TTL_MS), RATE_PER_SEC: '0' };
    [victim, survivor] = await ChatProcess.startPair(env);
  });
  after(async () => {
    for (const client of clients) client.destroy();
    await Promise.all([victim?.stop(), survivor?.stop()]);
    await redis?.stop();
  });

  it('releases its users and memberships within NODE_TTL_MS, and is replaced', async () => {
    const watcher = await loggedIn(survivor.port, 'watcher');
    clients.push(watcher);
    await watcher.command('JOIN #hall', 'OK');
    for (let i = 0; i < USERS; i++) {
      const client = await loggedIn(victim.port, `user${i}`);
      clients.push(client);
      await client.command('JOIN #hall', 'OK');
      await client.command(`JOIN #room${i % 5}`, 'OK');
    }
    // Which users sit on which worker, from the victim's own log (remote port → worker pid).
    const pidOfPort = new Map(victim.logs.filter((line) => line.msg === 'connection opened')
      .map((line) => [Number(String(line.remote).split(':').pop()), line.pid as number]));
    const userPids = clients.slice(1).map((client) => pidOfPort.get(client.socket.localPort!)!);
    const killedPid = userPids[0]!;
    const doomed = userPids.flatMap((pid, i) => (pid === killedPid ? [`user${i}`] : []));
    const spared = userPids.flatMap((pid, i) => (pid === killedPid ? [] : [`user${i}`]));
    assert.ok(doomed.length > 0 && spared.length > 0, 'users on both workers of the victim instance');

    const listeningBefore = victim.logs.filter((line) => line.msg === 'listening').length;
    const killedAt = performance.now();
    process.kill(killedPid, 'SIGKILL');

    // Every name of the dead worker can be taken from the other instance.
    const takers: LineClient[] = [];
    for (const name of doomed) takers.push(await loggedInOnceFree(survivor.port, name, NODE_TTL_MS * 2));
    clients.push(...takers);
    const releasedAfterMs = performance.now() - killedAt;
    assert.ok(releasedAfterMs <= NODE_TTL_MS, `names came free after ${Math.round(releasedAfterMs)} ms`);

    // The new holders of those names are in no room, and room messages count only the living.
    for (const taker of takers) await taker.command('MSG #hall hi', 'ERROR ROOM #hall NOT AVAILABLE');
    const hallMembers = await redis.client.hkeys(new RedisKeys('crash:').roomMembers('#hall'));
    assert.deepEqual(hallMembers.sort(), ['watcher', ...spared].sort());
    await watcher.command('MSG #hall still here?', 'OK', 'GOTROOMMSG watcher #hall still here?');
    for (const name of spared) {
      const client = clients[1 + Number(name.slice(4))]!;
      await client.expect('GOTROOMMSG watcher #hall still here?');
    }

    // The primary replaced the worker, and the instance serves new clients on both workers.
    await waitFor('a replacement worker', () =>
      victim.logs.filter((line) => line.msg === 'listening').length > listeningBefore, 10_000);
    const fresh = await Promise.all(Array.from({ length: 10 }, (_, i) => loggedIn(victim.port, `fresh${i}`)));
    clients.push(...fresh);
    await fresh[0]!.command('MSG watcher from the restarted side', 'OK');
    await watcher.expect('GOTUSERMSG fresh0 from the restarted side');
    const reaped = survivor.logs.concat(victim.logs).filter((line) => line.msg === 'released the sessions of a dead worker');
    assert.equal(reaped.length, 1, 'exactly one reaper cleaned up');
    assert.equal(reaped[0]!.released, doomed.length);
  });

  it('leaves no ghost once everyone is gone', async () => {
    for (const client of clients.splice(0)) client.destroy();
    await waitFor('no chat state left', async () => (await chatStateKeys(redis.client, 'crash:')).length === 0);
  });
});

describe('a whole instance killed with SIGKILL (primary and workers)', () => {
  let redis: TestRedis;
  let lost: ChatProcess;
  let survivor: ChatProcess;
  const clients: LineClient[] = [];

  before(async () => {
    redis = await startRedis();
    const env = { REDIS_URL: redis.url, REDIS_PREFIX: 'gone:', NODE_TTL_MS: String(NODE_TTL_MS) };
    [lost, survivor] = await ChatProcess.startPair(env);
  });
  after(async () => {
    for (const client of clients) client.destroy();
    await survivor?.stop();
    await redis?.stop();
  });

  it('has every user and membership released by the other instance within NODE_TTL_MS', async () => {
    const watcher = await loggedIn(survivor.port, 'watcher');
    clients.push(watcher);
    await watcher.command('JOIN #lobby', 'OK');
    const names = Array.from({ length: 10 }, (_, i) => `gone${i}`);
    for (const name of names) {
      const client = await loggedIn(lost.port, name);
      clients.push(client);
      await client.command('JOIN #lobby', 'OK');
    }
    const pids = new Set([lost.pid, ...lost.logs.filter((line) => line.msg === 'listening').map((line) => line.pid as number)]);
    assert.equal(pids.size, 3, 'a primary and two workers');
    const killedAt = performance.now();
    for (const pid of pids) process.kill(pid, 'SIGKILL');

    for (const name of names) clients.push(await loggedInOnceFree(survivor.port, name, NODE_TTL_MS * 2));
    const releasedAfterMs = performance.now() - killedAt;
    assert.ok(releasedAfterMs <= NODE_TTL_MS, `names came free after ${Math.round(releasedAfterMs)} ms`);
    assert.deepEqual(await redis.client.hkeys(new RedisKeys('gone:').roomMembers('#lobby')), ['watcher']);
    const reaped = survivor.logs.filter((line) => line.msg === 'released the sessions of a dead worker');
    // Each killed worker once. On a loaded machine a worker may also have been taken for dead
    // after a long pause and gone on under a new id (it says so): its old id is reaped too.
    const reapedIds = reaped.map((line) => line.deadWorker as string);
    const renewed = new Set([...survivor.logs, ...lost.logs]
      .filter((line) => line.msg === 'this worker was taken for dead; continuing under a new worker id')
      .map((line) => line.from as string));
    assert.equal(new Set(reapedIds).size, reapedIds.length, `no dead worker cleaned up twice: ${reapedIds.join(', ')}`);
    assert.equal(reapedIds.filter((id) => !renewed.has(id)).length, 2,
      `each killed worker reaped, and no other that did not renew: reaped ${reapedIds.join(', ')}; renewed ${[...renewed].join(', ')}`);
    assert.equal(reaped.reduce((sum, line) => sum + Number(line.released), 0), names.length);
  });
});
