import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { RedisKeys } from '../../src/backplane/redis/keys.js';
import { ChatProcess, runChatToExit } from '../helpers/chat-process.js';
import { loggedIn } from '../helpers/client.js';
import { freePort } from '../helpers/ports.js';
import { type ProcessRedis, startRedisProcess } from '../helpers/redis.js';
import { waitFor } from '../helpers/wait.js';

// Starting never loops: a failure that would repeat stops the instance with one line naming
// the setting to fix; Redis not there yet is waited for (not ready meanwhile), so the pieces of
// a deployment may start in any order.

/** Holds a port on 127.0.0.1, as another program would. */
async function occupiedPort(): Promise<{ port: number; server: Server }> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { port: (server.address() as { port: number }).port, server };
}

describe('starting chatline', () => {
  let redis: ProcessRedis;
  let taken: { port: number; server: Server };
  before(async () => {
    redis = await startRedisProcess();
    taken = await occupiedPort();
  });
  after(async () => {
    taken?.server.close();
    await redis?.stop();
  });

  for (const [mode, env] of [['embedded', { REDIS_URL: '' }], ['Redis mode', {}]] as const) {
    for (const variable of ['PORT', 'HEALTH_PORT'] as const) {
      it(`stops with one line naming ${variable} when its port is taken (${mode})`, async () => {
        const chat = await ChatProcess.spawn({ REDIS_URL: redis.url, REDIS_PREFIX: 'start:', ...env, [variable]: String(taken.port) }, 2);
        assert.equal(await chat.exited(), 1);
        const fatal = chat.logs.filter((line) => line.level === 60);
        assert.equal(fatal.length, 1, JSON.stringify(chat.logs));
        assert.equal(fatal[0]!.msg, `cannot listen on ${variable}=${taken.port} (127.0.0.1:${taken.port}): address already in use`);
        assert.equal(chat.logs.filter((line) => line.msg === 'a worker exited; starting another').length, 0, 'no restart loop');
        assert.equal(chat.stderr, '');
      });
    }
  }

  it('refuses HEALTH_PORT equal to PORT before starting anything', async () => {
    const { code, stderr } = await runChatToExit({ PORT: '9123', HEALTH_PORT: '9123' });
    assert.equal(code, 1);
    assert.equal(stderr, 'chatline: bad configuration: HEALTH_PORT=9123 must differ from PORT: both would listen on port 9123\n');
  });

  it('leaves nothing for others to reap but, at most, its workers once each, empty', async () => {
    const env = { REDIS_URL: redis.url, REDIS_PREFIX: 'reap:', NODE_TTL_MS: '2000' };
    const healthy = await ChatProcess.start(env, 1);
    try {
      const failing = await ChatProcess.spawn({ ...env, PORT: String(taken.port) }, 2);
      assert.equal(await failing.exited(), 1);
      // A worker that fails to listen leaves at once; its sibling, stopped by the primary while
      // it may still be registering, leaves too or is reaped once, holding nobody.
      await waitFor('only the healthy worker to be registered', async () => (await redis.client.scard(new RedisKeys('reap:').workers())) === 1, 10_000);
      // Two more heartbeat lifetimes: a restart loop would register (and be reaped) again.
      await new Promise((resolve) => setTimeout(resolve, 4000));
      const reaped = healthy.logs.filter((line) => line.msg === 'released the sessions of a dead worker');
      assert.ok(reaped.length <= 1, `reaped ${reaped.length} workers of an instance that had 2, one of which left by itself`);
      for (const line of reaped) assert.equal(line.released, 0, JSON.stringify(line));
    } finally {
      await healthy.stop();
    }
  });

  it('waits for a Redis that is not there yet, naming it (password hidden), and serves once it comes', async () => {
    await redis.kill();
    const url = `redis://:s3cret-pass@127.0.0.1:${redis.port}`;
    const chat = await ChatProcess.spawn({ REDIS_URL: url, REDIS_PREFIX: 'late:' }, 2);
    try {
      await waitFor('attempts to be logged', () => chat.logs.filter((line) => line.msg?.startsWith('cannot reach Redis')).length >= 4, 15_000);
      const attempt = chat.logs.find((line) => line.msg?.startsWith('cannot reach Redis'))!;
      assert.equal(attempt.redis, `REDIS_URL=redis://:***@127.0.0.1:${redis.port}`);
      assert.ok(!JSON.stringify(chat.logs).includes('s3cret-pass'), 'the password is never logged');
      assert.equal((await chat.probe('/readyz')).status, 503);
      assert.equal(chat.child.exitCode, null, 'still running');
      await redis.restart();
      await waitFor('/readyz to say ready', async () => (await chat.probe('/readyz')).status === 200, 20_000);
      const client = await loggedIn(chat.port, 'early-bird');
      await client.command('MSG early-bird up', 'OK', 'GOTUSERMSG early-bird up');
      client.destroy();
    } finally {
      await chat.stop();
      await redis.restart();
    }
  });

  it('stops cleanly, without an EPIPE, when told to stop while its workers wait for Redis', async () => {
    const port = await freePort();
    const chat = await ChatProcess.spawn({ REDIS_URL: `redis://127.0.0.1:${port}` }, 2);
    await waitFor('workers to be trying', () => chat.logs.some((line) => line.msg?.startsWith('cannot reach Redis')), 15_000);
    chat.child.kill('SIGTERM');
    assert.equal(await chat.exited(), 0);
    assert.doesNotMatch(chat.stderr, /EPIPE|Error/);
  });

  it('refuses a Redis whose maxmemory-policy evicts, saying what to set', async () => {
    await redis.client.config('SET', 'maxmemory-policy', 'allkeys-lru');
    try {
      const chat = await ChatProcess.spawn({ REDIS_URL: redis.url, REDIS_PREFIX: 'evict:' }, 2);
      assert.equal(await chat.exited(), 1);
      const fatal = chat.logs.filter((line) => line.level === 60);
      assert.equal(fatal.length, 1);
      assert.match(fatal[0]!.msg, /maxmemory-policy is allkeys-lru: chatline needs noeviction/);
    } finally {
      await redis.client.config('SET', 'maxmemory-policy', 'noeviction');
    }
  });

  it('logs what ioredis prints as JSON lines, not on stderr', async () => {
    // A password to a Redis that wants none: ioredis warns about it with console.warn.
    const url = redis.url.replace('redis://', 'redis://:unneeded@');
    const chat = await ChatProcess.start({ REDIS_URL: url, REDIS_PREFIX: 'warn:' }, 1);
    try {
      await waitFor('the warning', () => chat.logs.some((line) => line.source === 'library' && /does not require a password/.test(line.msg)));
      assert.equal(chat.stderr, '');
    } finally {
      await chat.stop();
    }
  });
});
