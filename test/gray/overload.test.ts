import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { RedisKeys } from '../../src/backplane/redis/keys.js';
import { ChatProcess } from '../helpers/chat-process.js';
import { LineClient, loggedIn } from '../helpers/client.js';
import { GrayCluster } from '../helpers/gray-cluster.js';
import { sample, scrape } from '../helpers/metrics.js';
import { rssBytes } from '../helpers/process-memory.js';
import { sleepRedis } from '../helpers/redis.js';
import { waitFor } from '../helpers/wait.js';

// Overload and abuse degrade loudly and boundedly: findings 6, 7 and 9 of the gray-failure issue.

const NODE_TTL_MS = 4000;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('overload and abuse', () => {
  const clusters: GrayCluster[] = [];
  const chats: ChatProcess[] = [];
  after(async () => {
    await Promise.all(clusters.map((cluster) => cluster.stop()));
    await Promise.all(chats.map((chat) => chat.stop()));
  });

  it('finding 6: a subscriber Redis cuts for its output buffer is noticed at once, resubscribed and counted', async () => {
    const cluster = await GrayCluster.start({
      prefix: 'cut:', nodeTtlMs: NODE_TTL_MS, workers: 1, proxy: true,
      redisArgs: ['--client-output-buffer-limit', 'pubsub', '256kb', '128kb', '1'],
    });
    clusters.push(cluster);
    const reader = await cluster.member('reader', 0, ['#busy']);
    await cluster.member('other', 0, ['#busy']);
    const sender = await loggedIn(cluster.instances[1]!.port, 'sender');
    await sender.command('JOIN #busy', 'OK');
    // The delivery connection of instance 0's worker stops reading, as a worker that falls behind does.
    const stall = cluster.proxy!.stall({ links: ':deliveries', direction: 'toClient', stopReading: true, scope: 'open' });
    const text = 'y'.repeat(900);
    for (let round = 0; round < 20; round++) {
      sender.send(...Array.from({ length: 500 }, () => `MSG #busy ${text}`));
      await sender.take(1000, 30_000);
      if (sample(await scrape(cluster.instances[0]!.healthPort), 'chatline_subscriber_resubscribes_total') > 0) break;
    }
    stall.clear();
    const samples = await waitFor('the cut subscription to be made again', async () => {
      const now = await scrape(cluster.instances[0]!.healthPort);
      return sample(now, 'chatline_subscriber_resubscribes_total') >= 1 ? now : undefined;
    }, 15_000);
    assert.ok(sample(samples, 'chatline_redis_reconnects_total', { role: 'deliveries' }) >= 1);
    sender.destroy();
    // Members of the cut worker hear again, without logging in anew.
    assert.deepEqual(await cluster.check(2000), []);
    assert.equal(reader.name, 'reader');
  });

  it('finding 6: past MAX_WORKER_PENDING_BYTES the largest backlogs are shed, each told, while readers carry on', async () => {
    const chat = await ChatProcess.start({
      REDIS_URL: '', RATE_PER_SEC: '0', MAX_PENDING_BYTES: String(4 * 1024 * 1024), MAX_WORKER_PENDING_BYTES: String(6 * 1024 * 1024),
    });
    const shedSoFar = async () => sample(await scrape(chat.healthPort), 'chatline_connections_closed_total', { reason: 'output_shed' });
    chats.push(chat);
    const sinks = await Promise.all(Array.from({ length: 4 }, (_, i) => loggedIn(chat.port, `sink${i}`)));
    const reader = await loggedIn(chat.port, 'reader');
    const sender = await loggedIn(chat.port, 'sender');
    for (const client of [...sinks, reader, sender]) await client.command('JOIN #flood', 'OK');
    for (const sink of sinks) sink.socket.pause();
    const text = 'z'.repeat(1000);
    // The kernel's socket buffers take the first megabytes for each sink: flood until the
    // worker's own buffers pass the cap and the sweep (every 250 ms) acts. In small rounds: a
    // round that outlasts several sweeps on a loaded machine, each finding the cap passed again
    // by the flood still coming, would rightly shed a sink at each.
    for (let round = 0; round < 320 && (await shedSoFar()) === 0; round++) {
      sender.send(...Array.from({ length: 250 }, () => `MSG #flood ${text}`));
      await sender.take(500, 30_000);
      await reader.take(250, 30_000);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    // The flood has stopped: a few more sweeps must shed no one once the worker is under the cap.
    await new Promise((resolve) => setTimeout(resolve, 800));
    const samples = await scrape(chat.healthPort);
    const shed = sample(samples, 'chatline_connections_closed_total', { reason: 'output_shed' });
    // A sink whose kernel buffer filled before the others' may pass its own MAX_PENDING_BYTES
    // while the worker is still under its cap: cut as a slow reader, which is right too.
    const cutAlone = sample(samples, 'chatline_connections_closed_total', { reason: 'slow_reader' });
    assert.ok(shed >= 1 && shed + cutAlone < 4, `shed ${shed} and cut ${cutAlone} of 4 non-readers: enough to get under the cap, no more`);
    await reader.command('MSG #flood still here', 'OK', 'GOTROOMMSG reader #flood still here');
    for (const client of [...sinks, reader, sender]) client.destroy();
  });

  it('finding 7: a user whose connection closes during an outage is not left subscribed', async () => {
    const cluster = await GrayCluster.start({ prefix: 'left:', nodeTtlMs: NODE_TTL_MS });
    clusters.push(cluster);
    const leaver = await cluster.member('leaver', 0, ['#r']);
    await cluster.member('stayer', 0, ['#r']);
    await cluster.redis.kill();
    leaver.destroy();
    await sleep(500);
    await cluster.redis.restart();
    for (const chat of cluster.instances) {
      await waitFor('ready again', async () => (await chat.probe('/readyz')).status === 200, 20_000);
    }
    assert.deepEqual(await cluster.check(), []);
    const [, subscribers] = await cluster.redis.client.pubsub('NUMSUB', new RedisKeys('left:').userInbox('leaver')) as [string, number];
    assert.equal(subscribers, 0);
  });

  describe('finding 9: abuse is bounded', () => {
    it('closes a connection that never logs in, however it trickles bytes or PINGs', async () => {
      const chat = await ChatProcess.start({ REDIS_URL: '', LOGIN_TIMEOUT_MS: '1500' });
      chats.push(chat);
      const trickler = await LineClient.connect(chat.port);
      const pinger = await LineClient.connect(chat.port);
      const timer = setInterval(() => {
        trickler.sendRaw('x');
        pinger.send('PING');
      }, 300);
      try {
        await trickler.expect('ERROR LOGIN TIMEOUT');
        await trickler.closed;
        for (let line = await pinger.nextLine(); line !== 'ERROR LOGIN TIMEOUT'; line = await pinger.nextLine()) assert.equal(line, 'PONG');
        await pinger.closed;
      } finally {
        clearInterval(timer);
      }
    });

    it('counts complete commands, not bytes, against the idle timeout', async () => {
      const chat = await ChatProcess.start({ REDIS_URL: '', IDLE_TIMEOUT_MS: '1000' });
      chats.push(chat);
      const client = await loggedIn(chat.port, 'trickler');
      const timer = setInterval(() => client.sendRaw('M'), 200);
      try {
        await client.expect('ERROR IDLE TIMEOUT');
        await client.closed;
      } finally {
        clearInterval(timer);
      }
    });

    it('disconnects a client that keeps sending into the rate limit, after a bounded number of refusals', async () => {
      const chat = await ChatProcess.start({ REDIS_URL: '', RATE_BURST: '5', RATE_PER_SEC: '1', RATE_LIMIT_STRIKES: '10' });
      chats.push(chat);
      const client = await LineClient.connect(chat.port);
      client.send(...Array.from({ length: 500 }, () => 'PING'));
      const lines: string[] = [];
      await client.closed.catch(() => {});
      for (;;) {
        try { lines.push(await client.nextLine(100)); } catch { break; }
      }
      assert.deepEqual(lines.slice(0, 5), Array(5).fill('PONG'));
      assert.ok(lines.length <= 5 + 11 + 1, `${lines.length} lines answered before the close`);
      assert.ok(lines.slice(5).every((line) => line === 'ERROR RATE LIMITED' || line === 'PONG'), lines.join('\n'));
      assert.equal(lines.at(-1), 'ERROR RATE LIMITED');
      assert.equal(sample(await scrape(chat.healthPort), 'chatline_connections_closed_total', { reason: 'rate_abuse' }), 1);
    });

    it('holds a bounded amount of input while Redis is slow, however much clients pipeline', async () => {
      const cluster = await GrayCluster.start({ prefix: 'pipe:', nodeTtlMs: 10_000, workers: 1 });
      clusters.push(cluster);
      const instance = cluster.instances[0]!;
      const [worker] = instance.workerPids;
      const clients = await Promise.all(Array.from({ length: 200 }, (_, i) => loggedIn(instance.port, `p${i}`)));
      const settled = async () => {
        await sleep(500);
        return rssBytes(worker!);
      };
      const before = await settled();
      const { awake } = await sleepRedis(cluster.redis.url, 4);
      const line = `MSG p0 ${'q'.repeat(1000)}\n`;
      const megabyte = line.repeat(Math.ceil((1024 * 1024) / line.length));
      for (const client of clients) client.sendRaw(megabyte);
      await sleep(2000);
      const during = rssBytes(worker!);
      await awake;
      for (const client of clients) client.destroy();
      const growth = during - before;
      // 200 MB was sent. Unbounded, the worker held about 2.5 MB per client (500 MB); bounded, it
      // holds at most 16 MiB of commands plus one read chunk per client.
      assert.ok(growth < 120 * 1024 * 1024, `worker RSS grew by ${(growth / 1048576).toFixed(1)} MiB`);
    });
  });
});
