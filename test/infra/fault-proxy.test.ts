import assert from 'node:assert/strict';
import { once } from 'node:events';
import { after, before, beforeEach, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis, type RedisOptions } from 'ioredis';
import { FaultProxy } from '../helpers/fault-proxy.js';
import { startRedisProcess, type ProcessRedis } from '../helpers/redis.js';
import { waitFor } from '../helpers/wait.js';

// What a gray-failure test relies on: each fault does what it says to the links it selects,
// and nothing else; no byte is ever reordered or duplicated. Time is asserted as a lower bound only.

describe('fault proxy', () => {
  let redis: ProcessRedis;
  let proxy: FaultProxy;
  const clients: Redis[] = [];

  /** A plain ioredis 6 client (RESP2) through the proxy, named as chatline names its connections. */
  function through(name: string, options: RedisOptions = {}): Redis {
    const client = new Redis(proxy.port, '127.0.0.1', {
      connectionName: name, protocol: 2, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, ...options,
    });
    client.on('error', () => {});
    clients.push(client);
    return client;
  }

  async function connected(name: string): Promise<Redis> {
    const client = through(name);
    await client.connect();
    return client;
  }

  before(async () => {
    redis = await startRedisProcess({ args: ['--client-output-buffer-limit', 'pubsub', '64kb', '32kb', '1'] });
  });
  beforeEach(async () => {
    for (const client of clients.splice(0)) client.disconnect();
    await proxy?.stop();
    await redis.client.flushall();
    proxy = await FaultProxy.start(redis.port);
  });
  after(async () => {
    for (const client of clients) client.disconnect();
    await proxy?.stop();
    await redis?.stop();
  });

  it('knows each link by the name ioredis sets first', async () => {
    await connected('infra:w1:commands');
    await connected('infra:w1:deliveries');
    const links = proxy.openLinks();
    assert.deepEqual(links.map((link) => link.name).sort(), ['infra:w1:commands', 'infra:w1:deliveries']);
    const [deliveries, ...others] = proxy.openLinks(':deliveries');
    assert.equal(others.length, 0);
    assert.equal(deliveries!.name, 'infra:w1:deliveries');
    assert.match(deliveries!.opening, /setname/i, 'the opening is what the client sent first');
    assert.ok(deliveries!.forwarded.toRedis > 0 && deliveries!.forwarded.toClient > 0);
    assert.ok(proxy.bytes.forwarded.toRedis > 0 && proxy.bytes.forwarded.toClient > 0);
  });

  it('stall toClient: Redis runs the commands, the replies wait for resume and come in order', async () => {
    const stalled = await connected('infra:stalled');
    const healthy = await connected('infra:healthy');
    assert.equal(proxy.stall({ links: 'infra:stalled', direction: 'toClient' }).matched, 1);
    const replies = [stalled.incr('n'), stalled.incr('n'), stalled.incr('n')];
    await waitFor('Redis to run the stalled link\'s commands', async () => (await redis.client.get('n')) === '3');
    assert.equal(await healthy.ping(), 'PONG', 'other links are untouched');
    assert.equal(await settlesWithin(Promise.all(replies), 300), false, 'no reply before resume');
    proxy.resume();
    assert.deepEqual(await Promise.all(replies), [1, 2, 3]);
  });

  it('stall toRedis: Redis sees nothing until resume, then everything in order', async () => {
    const stalled = await connected('infra:stalled');
    proxy.stall({ links: 'infra:stalled', direction: 'toRedis' });
    const pushes = Array.from({ length: 100 }, (_, i) => stalled.rpush('list', String(i)));
    await sleep(200);
    assert.equal(await redis.client.llen('list'), 0);
    proxy.resume({ links: 'infra:stalled' });
    assert.deepEqual(await Promise.all(pushes), Array.from({ length: 100 }, (_, i) => i + 1));
    assert.deepEqual(await redis.client.lrange('list', 0, -1), Array.from({ length: 100 }, (_, i) => String(i)));
  });

  it('stall holds megabytes in the proxy, Redis never notices; stopReading makes Redis feel it', async () => {
    // Under the 64kb hard limit each: Redis checks it as it queues a reply, so one bigger
    // message gets the subscriber dropped whatever the socket does.
    const message = Buffer.alloc(16 * 1024, 'x');
    const subscriberCount = async () => (await redis.client.call('CLIENT', 'LIST', 'TYPE', 'pubsub') as string)
      .split('\n').filter((line) => line.includes('name=infra:subscriber')).length;

    const held = through('infra:subscriber');
    await held.subscribe('big');
    const received: number[] = [];
    held.on('messageBuffer', (_channel: Buffer, message: Buffer) => received.push(message.length));
    proxy.stall({ links: 'infra:subscriber', direction: 'toClient' });
    for (let i = 0; i < 1024; i++) await redis.client.publish('big', message);
    await sleep(200);
    assert.equal(await subscriberCount(), 1, 'Redis (pubsub limit 64kb) still has the subscriber: the proxy took every byte');
    assert.deepEqual(received, []);
    proxy.resume();
    await waitFor('16 MB to arrive after resume', () => received.length === 1024);
    assert.ok(received.every((length) => length === message.length));

    proxy.stall({ links: 'infra:subscriber', direction: 'toClient', stopReading: true });
    await waitFor('Redis to drop the subscriber over its output buffer limit', async () => {
      for (let i = 0; i < 64; i++) await redis.client.publish('big', message);
      return (await subscriberCount()) === 0;
    }, 20_000);
    const ended = once(held, 'end');
    proxy.resume();
    await ended;
  });

  it('blackhole toClient drops the replies of commands Redis ran; toRedis drops the commands', async () => {
    const client = await connected('infra:victim');
    proxy.blackhole({ links: 'infra:victim', direction: 'toClient' });
    const reply = client.set('a', '1');
    await waitFor('Redis to run the SET', async () => (await redis.client.get('a')) === '1');
    assert.equal(await settlesWithin(reply, 300), false);
    assert.ok(proxy.bytes.dropped.toClient > 0);
    assert.equal(proxy.openLinks('infra:victim').length, 1, 'the connection stays open');

    await proxy.heal();
    const other = await connected('infra:victim2');
    proxy.blackhole({ links: 'infra:victim2', direction: 'toRedis' });
    const lost = other.set('b', '1');
    assert.equal(await settlesWithin(lost, 300), false);
    assert.equal(await redis.client.exists('b'), 0);
    assert.ok(proxy.bytes.dropped.toRedis > 0);
  });

  it('a blackhole lets a close through, unless told to drop the FIN too', async () => {
    for (const dropFin of [false, true]) {
      const name = `infra:fin-${dropFin}`;
      const client = await connected(name);
      proxy.blackhole({ links: name, direction: 'toClient', dropFin });
      const closed = once(client, 'close');
      const list = await redis.client.call('CLIENT', 'LIST') as string;
      const id = new RegExp(`id=(\\d+) [^\\n]*name=${name} `).exec(list)![1]!;
      await redis.client.call('CLIENT', 'KILL', 'ID', id);
      assert.equal(await settlesWithin(closed, 300), !dropFin, dropFin ? 'the FIN was dropped' : 'the close came through');
    }
  });

  it('cut closes the chosen links only; new connections are accepted', async () => {
    const victim = await connected('infra:victim');
    const bystander = await connected('infra:bystander');
    const ended = once(victim, 'end');
    assert.equal(proxy.cut('infra:victim'), 1);
    await ended;
    assert.equal(await bystander.ping(), 'PONG');
    const next = await connected('infra:victim');
    assert.equal(await next.ping(), 'PONG');
  });

  it('refuse turns new connections away (ECONNREFUSED), keeps open ones, and lets go', async () => {
    const open = await connected('infra:open');
    await proxy.refuse(true);
    await assert.rejects(through('infra:new').connect());
    const attempt = through('infra:new2');
    const errors: Error[] = [];
    attempt.on('error', (error: Error) => errors.push(error));
    await attempt.connect().catch(() => {});
    assert.ok(errors.some((error) => (error as NodeJS.ErrnoException).code === 'ECONNREFUSED'), `errors: ${errors.map(String).join(', ')}`);
    assert.equal(await open.ping(), 'PONG');
    await proxy.refuse(false);
    assert.equal(await (await connected('infra:new3')).ping(), 'PONG');
  });

  it('delay adds at least its time each way, and never reorders when it changes', async () => {
    const client = await connected('infra:slow');
    proxy.delay(150, { links: 'infra:slow' });
    let started = performance.now();
    await client.ping();
    assert.ok(performance.now() - started >= 295, `a round trip with 150 ms each way took ${performance.now() - started} ms`);

    proxy.delay(0, { links: 'infra:slow' });
    proxy.delay(150, { links: 'infra:slow', direction: 'toRedis' });
    started = performance.now();
    const early = Array.from({ length: 50 }, (_, i) => client.rpush('order', String(i)));
    // A fault acts on bytes as they reach the proxy: let these arrive under the delay.
    const earlyBytes = Array.from({ length: 50 }, (_, i) => respLength(['rpush', 'order', String(i)])).reduce((a, b) => a + b);
    await waitFor('the first 50 to reach the proxy', () => proxy.openLinks('infra:slow')[0]!.held.toRedis === earlyBytes);
    proxy.delay(0, { links: 'infra:slow', direction: 'toRedis' });
    const late = Array.from({ length: 50 }, (_, i) => client.rpush('order', String(50 + i)));
    assert.deepEqual(await Promise.all([...early, ...late]), Array.from({ length: 100 }, (_, i) => i + 1));
    assert.ok(performance.now() - started >= 145);
    assert.deepEqual(await redis.client.lrange('order', 0, -1), Array.from({ length: 100 }, (_, i) => String(i)));
  });

  it("scope 'open' spares later links; 'openAndNew' catches them as they name themselves", async () => {
    proxy.blackhole({ links: 'infra:late', scope: 'open' });
    assert.equal(await (await connected('infra:late')).ping(), 'PONG');

    proxy.stall({ links: 'infra:later', direction: 'toRedis' });
    const later = through('infra:later');
    const connecting = later.connect();
    await sleep(200);
    const names = await redis.client.client('LIST') as string;
    assert.doesNotMatch(names, /name=infra:later/, 'its CLIENT SETNAME was held');
    assert.equal(proxy.openLinks('infra:later').length, 1);
    proxy.resume();
    await connecting;
    assert.equal(await later.ping(), 'PONG');
  });

  it('heal lifts every fault at once', async () => {
    const client = await connected('infra:any');
    proxy.stall({ direction: 'toClient' });
    proxy.delay(100);
    proxy.blackhole({ links: 'nobody' });
    await proxy.refuse(true);
    const reply = client.ping();
    await proxy.heal();
    assert.equal(await reply, 'PONG');
    assert.equal(await (await connected('infra:after')).ping(), 'PONG');
  });

  it('keeps every byte, once and in order, under faults that come and go', async () => {
    const client = await connected('infra:order');
    const count = 3000;
    const replies: Promise<number>[] = [];
    for (let i = 0; i < count; i++) {
      replies.push(client.rpush('seq', String(i)));
      if (i % 100 === 0) {
        const direction = (['toRedis', 'toClient', 'both'] as const)[Math.floor(Math.random() * 3)];
        switch (Math.floor(Math.random() * 4)) {
          case 0: proxy.stall({ direction }); break;
          case 1: proxy.resume(); break;
          case 2: proxy.delay(Math.floor(Math.random() * 20), { direction }); break;
          default: await sleep(Math.random() * 10);
        }
        await sleep(1);
      }
    }
    await proxy.heal();
    assert.deepEqual(await Promise.all(replies), Array.from({ length: count }, (_, i) => i + 1));
    assert.deepEqual(await redis.client.lrange('seq', 0, -1), Array.from({ length: count }, (_, i) => String(i)));
  });
});

async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  promise.catch(() => {});
  return Promise.race([promise.then(() => true, () => true), sleep(ms).then(() => false)]);
}

/** Bytes of a command as a RESP array of bulk strings (ASCII arguments). */
function respLength(args: string[]): number {
  return `*${args.length}\r\n`.length + args.reduce((sum, arg) => sum + `$${arg.length}\r\n${arg}\r\n`.length, 0);
}
