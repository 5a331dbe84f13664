import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { after, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { sleepRedis, startRedisProcess, type ProcessRedis } from '../helpers/redis.js';
import { waitFor } from '../helpers/wait.js';

// startRedisProcess' options, sleepRedis, and the promise that no redis-server outlives a test.

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

describe('redis-server processes', () => {
  const started: ProcessRedis[] = [];
  after(async () => {
    for (const redis of started) await redis.stop();
  });

  it('keeps the defaults, adds the extra arguments and the password, and keeps them across restart', async () => {
    const redis = await startRedisProcess({ args: ['--maxmemory', '10mb', '--maxmemory-policy', 'noeviction'], password: 's3cret' });
    started.push(redis);
    const config = async (name: string) => (await redis.client.config('GET', name) as string[])[1];
    assert.equal(await config('save'), '');
    assert.equal(await config('appendonly'), 'no');
    assert.equal(await config('bind'), '127.0.0.1');
    assert.equal(await config('maxmemory'), String(10 * 1024 * 1024));

    const stranger = new Redis(redis.port, '127.0.0.1', { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    const errors: string[] = [];
    stranger.on('error', (error: Error) => errors.push(error.message));
    await stranger.connect().catch(() => {});
    assert.ok(errors.some((message) => message.includes('NOAUTH')), `a client without the password got: ${errors.join(', ')}`);
    stranger.disconnect();

    const pid = redis.pid;
    await redis.restart();
    assert.notEqual(redis.pid, pid);
    await waitFor('the assertion client to reconnect', async () => (await redis.client.ping().catch(() => '')) === 'PONG');
    assert.equal(await config('maxmemory'), String(10 * 1024 * 1024));
  });

  it('sleepRedis puts Redis to sleep without tying up the test client', async () => {
    const redis = await startRedisProcess({ args: ['--enable-debug-command', 'yes'] });
    started.push(redis);
    const asleepAt = performance.now();
    const { awake } = await sleepRedis(redis.url, 1);
    const ping = redis.client.ping();
    assert.equal(await Promise.race([ping, sleep(200).then(() => 'no answer')]), 'no answer');
    await awake;
    assert.equal(await ping, 'PONG');
    assert.ok(performance.now() - asleepAt >= 990, 'DEBUG SLEEP 1 lasts a second at least');
  });

  it('sleepRedis says what is missing when DEBUG is disabled (the Redis 7 default)', async () => {
    const redis = await startRedisProcess();
    started.push(redis);
    await assert.rejects(sleepRedis(redis.url, 1), /--enable-debug-command/);
  });

  for (const how of ['exits', 'gets SIGTERM'] as const) {
    it(`kills its redis-server when the test process ${how}`, async () => {
      const script = `
        import { startRedisProcess } from './test/helpers/redis.ts';
        const redis = await startRedisProcess();
        console.log(redis.pid);
        ${how === 'exits' ? 'process.exit(0);' : 'setInterval(() => {}, 1000);'}`;
      const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
      let output = '';
      child.stdout!.setEncoding('utf8').on('data', (text: string) => { output += text; });
      const exited = once(child, 'exit');
      const pid = Number(await waitFor('the child to report its redis-server', () => /^\d+\n/.exec(output)?.[0], 15_000));
      assert.ok(alive(pid));
      if (how === 'gets SIGTERM') child.kill('SIGTERM');
      await exited;
      await waitFor(`redis-server ${pid} to be gone`, () => !alive(pid), 5000);
    });
  }
});

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
