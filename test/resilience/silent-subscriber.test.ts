import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ChatProcess } from '../helpers/chat-process.js';
import { loggedIn, type LineClient } from '../helpers/client.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import { FaultProxy } from '../helpers/fault-proxy.js';
import { sample, scrape } from '../helpers/metrics.js';
import { waitFor } from '../helpers/wait.js';

// The subscriber connection stays open but delivers nothing (as seen with other backplanes).
// Each worker probes its own pub/sub path, notices the silence, reconnects the subscriber
// (counted), and delivery works again without anyone logging in anew.

const NODE_TTL_MS = 2000; // probes every 400 ms, silence noticed after 1.2 s

describe('a subscriber that silently stops delivering', () => {
  let redis: TestRedis;
  let proxy: FaultProxy;
  let chat: ChatProcess;
  const clients: LineClient[] = [];

  before(async () => {
    redis = await startRedis();
    proxy = await FaultProxy.start(Number(new URL(redis.url).port));
    chat = await ChatProcess.start({ REDIS_URL: proxy.url, REDIS_PREFIX: 'silent:', NODE_TTL_MS: String(NODE_TTL_MS) }, 1);
  });
  after(async () => {
    for (const client of clients) client.destroy();
    await chat?.stop();
    await proxy?.stop();
    await redis?.stop();
  });

  it('is noticed by the probe and replaced, and delivery resumes', async () => {
    const [alice, bob] = await Promise.all([loggedIn(chat.port, 'alice'), loggedIn(chat.port, 'bob')]);
    clients.push(alice, bob);
    await alice.command('MSG bob before', 'OK');
    await bob.expect('GOTUSERMSG alice before');

    // Only the connection open now goes silent: the one the worker opens to replace it works.
    // Not even its close gets through, as with a peer that vanished.
    const silence = proxy.blackhole({ links: ':deliveries', direction: 'toClient', scope: 'open', dropFin: true });
    assert.equal(silence.matched, 1, 'the worker has one subscriber connection');
    // What is sent now may be lost (at most once), but never duplicated later.
    await alice.command('MSG bob into the void', 'OK');

    await waitFor('the worker to notice and subscribe again on a new connection', async () =>
      sample(await scrape(chat.healthPort), 'chatline_subscriber_resubscribes_total') >= 1, 8000);
    await waitFor('/readyz to be ready', async () => (await chat.probe('/readyz')).status === 200, 10_000);

    await alice.command('MSG bob after', 'OK');
    const got = await bob.nextLine();
    assert.ok(got === 'GOTUSERMSG alice after', `bob got ${got}`);
    await bob.expectSilence(300);
  });
});
