import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { RedisKeys } from '../../src/backplane/redis/keys.js';
import { ChatProcess } from '../helpers/chat-process.js';
import { type LineClient, loggedIn } from '../helpers/client.js';
import { chatStateKeys, type ProcessRedis, startRedisProcess } from '../helpers/redis.js';
import { waitFor } from '../helpers/wait.js';

// Redis killed under live clients: every command answers SERVICE UNAVAILABLE at once, nothing
// hangs, /readyz says not ready. Redis back, empty: the cluster converges to exactly the live
// connections again. A redis-server process, so it can be killed and restarted on its port.

const PREFIX = 'outage:';
const keys = new RedisKeys(PREFIX);

describe('Redis going away and coming back empty', () => {
  let redis: ProcessRedis;
  let instances: ChatProcess[];
  const clients = new Map<string, LineClient>();

  before(async () => {
    redis = await startRedisProcess();
    const env = { REDIS_URL: redis.url, REDIS_PREFIX: PREFIX, NODE_TTL_MS: '3000', RATE_PER_SEC: '0' };
    instances = await ChatProcess.startPair(env);
  });
  after(async () => {
    for (const client of clients.values()) client.destroy();
    await Promise.all(instances?.map((chat) => chat.stop()) ?? []);
    await redis?.stop();
  });

  it('answers SERVICE UNAVAILABLE within a second while Redis is gone, and restores live sessions after', async () => {
    for (const [i, name] of ['ann', 'ben', 'cid', 'dee', 'leaver'].entries()) {
      const client = await loggedIn(instances[i % 2]!.port, name);
      clients.set(name, client);
      await client.command('JOIN #Ops', 'OK');
    }
    await redis.kill();

    for (const [name, client] of clients) {
      // (A message to oneself needs no Redis, so each writes to someone else.)
      const other = name === 'ann' ? 'ben' : 'ann';
      for (const command of ['MSG #ops anyone?', `MSG ${other} psst`, 'JOIN #new', `LOGIN x${name}`]) {
        const started = performance.now();
        client.send(command);
        const reply = await client.nextLine(3000);
        const tookMs = performance.now() - started;
        assert.equal(reply, command.startsWith('LOGIN') ? `ERROR ALREADY LOGGED IN AS ${name}` : 'ERROR SERVICE UNAVAILABLE');
        assert.ok(tookMs < 1000, `${command} took ${Math.round(tookMs)} ms`);
      }
    }
    for (const chat of instances) {
      await waitFor('/readyz to say not ready', async () => (await chat.probe('/readyz')).status === 503, 5000);
    }
    // One client leaves during the outage: its logout cannot reach Redis.
    clients.get('leaver')!.destroy();
    clients.delete('leaver');

    const logsBefore = instances.map((chat) => chat.logs.length);
    await redis.restart();
    // Every worker (two per instance) has put its sessions back; /readyz agrees.
    for (const [i, chat] of instances.entries()) {
      await waitFor('both workers to reconcile', () => new Set(chat.logs.slice(logsBefore[i])
        .filter((line) => line.msg === 'reconciled shared state').map((line) => line.worker)).size === 2, 15_000);
      await waitFor('/readyz to say ready again', async () => (await chat.probe('/readyz')).status === 200, 15_000);
    }
    const expected = [
      ...['ann', 'ben', 'cid', 'dee'].flatMap((user) => [keys.user(user), keys.userRooms(user)]),
      keys.roomMembers('#ops'), ...keys.roomIndex('#ops'),
    ];
    await waitFor('Redis to hold exactly the live sessions', async () => {
      const keys = (await chatStateKeys(redis.client, PREFIX)).filter((key) => !key.includes('{worker:'));
      return JSON.stringify(keys) === JSON.stringify(expected.sort());
    }, 15_000);
    assert.deepEqual((await redis.client.hkeys(keys.roomMembers('#ops'))).sort(), ['ann', 'ben', 'cid', 'dee']);

    const [ann, ben] = [clients.get('ann')!, clients.get('ben')!];
    await ann.command('MSG #ops back', 'OK', 'GOTROOMMSG ann #Ops back');
    for (const name of ['ben', 'cid', 'dee']) await clients.get(name)!.expect('GOTROOMMSG ann #Ops back');
    await ben.command('MSG ann direct', 'OK');
    await ann.expect('GOTUSERMSG ben direct');
    const newcomer = await loggedIn(instances[0]!.port, 'leaver');
    clients.set('leaver', newcomer);
    await newcomer.command('MSG ann the name was free', 'OK');
    await ann.expect('GOTUSERMSG leaver the name was free');
  });
});
