import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { GrayCluster } from '../helpers/gray-cluster.js';
import { sample, scrape } from '../helpers/metrics.js';
import { waitFor } from '../helpers/wait.js';

// Workers that crash while Redis is away, pause (GC, CPU starvation, VM steal, SIGSTOP) or hang.
// Findings 4, 5 and 8 of the gray-failure issue, reproduced, then judged by the checker.

const NODE_TTL_MS = 4000;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('workers that crash, pause or hang', () => {
  const clusters: GrayCluster[] = [];
  const start = async (prefix: string, env: Record<string, string> = {}, workers = 2) => {
    const cluster = await GrayCluster.start({ prefix, nodeTtlMs: NODE_TTL_MS, env, workers });
    clusters.push(cluster);
    return cluster;
  };
  after(async () => { await Promise.all(clusters.map((cluster) => cluster.stop())); });

  it('finding 4: a worker that dies while Redis is away takes only itself down, and the instance recovers', async () => {
    const cluster = await start('crash-outage:');
    const clients = [];
    for (let i = 0; i < 6; i++) clients.push(await cluster.member(`c${i}`, 1, ['#r']));
    await cluster.member('elsewhere', 0, ['#r']);
    await cluster.redis.kill();
    const [victim] = cluster.workerPids(1);
    process.kill(victim!, 'SIGKILL');
    await sleep(3000);
    const instance = cluster.instances[1]!;
    assert.equal(instance.child.exitCode, null, 'the instance still runs');
    const survivors = clients.filter((client) => client.open);
    assert.ok(survivors.length > 0 && survivors.length < clients.length, 'clients on the other worker stayed connected');
    for (const client of survivors) assert.equal(await client.command('PING alive'), 'PONG alive');
    assert.equal((await instance.probe('/healthz')).status, 200);
    assert.equal((await instance.probe('/readyz')).status, 503);

    await cluster.redis.restart();
    for (const chat of cluster.instances) {
      await waitFor('the instance to be ready again, replacement worker included', async () => (await chat.probe('/readyz')).status === 200, 20_000);
    }
    assert.deepEqual(await cluster.check(), []);
    const newcomer = await cluster.member('newcomer', 1, ['#r']);
    assert.equal(await newcomer.command('MSG #r hello {tag}'), 'OK');
  });

  it('finding 5a: a worker paused for less than half of NODE_TTL_MS keeps every session', async () => {
    const cluster = await start('short-pause:', { WATCHDOG_MS: '30000' }, 1);
    const paused = [await cluster.member('p0', 0, ['#r']), await cluster.member('p1', 0, ['#r'])];
    const watcher = await cluster.member('watcher', 1, ['#r']);
    const [pid] = cluster.workerPids(0);
    process.kill(pid!, 'SIGSTOP');
    await sleep(NODE_TTL_MS * 0.4);
    const taker = await cluster.client(1);
    assert.equal(await taker.command('LOGIN p0'), 'ERROR p0 IS ALREADY TAKEN', 'still held during the pause');
    process.kill(pid!, 'SIGCONT');
    assert.equal(await paused[0]!.command('MSG #r back {tag}'), 'OK');
    assert.deepEqual(await cluster.check(), []);
    assert.deepEqual(cluster.history.notices.filter((notice) => notice.client !== watcher.id && notice.client !== taker.id), [],
      'nobody was told anything');
  });

  it('finding 5b: a worker silent past NODE_TTL_MS loses its sessions, then never speaks for a name it lost', async () => {
    const cluster = await start('long-pause:', { WATCHDOG_MS: '60000' }, 1);
    const victim = await cluster.member('victim', 0, ['#r']);
    const bystander = await cluster.member('bystander', 0, ['#r']);
    const observer = await cluster.member('obs', 1, ['#r']);
    const [pid] = cluster.workerPids(0);
    process.kill(pid!, 'SIGSTOP');
    // Sent during the pause; waits in the kernel until the worker runs again.
    const buffered = victim.command('MSG obs {tag}');
    const taker = await cluster.client(1);
    const takenAt = await waitFor('the victim\'s name to be released cluster-wide', async () =>
      ((await taker.command('LOGIN victim')) === 'OK' ? performance.now() : undefined), NODE_TTL_MS * 2);
    process.kill(pid!, 'SIGCONT');
    await buffered;
    await waitFor('the victim to be told', () => cluster.history.notices.some((notice) =>
      notice.client === victim.id && notice.line === 'ERROR victim IS ALREADY TAKEN'));
    assert.equal(victim.name, undefined);
    assert.deepEqual(await cluster.check(), []);
    const fromVictim = cluster.history.deliveries.filter((delivery) =>
      delivery.client === observer.id && delivery.line.startsWith('GOTUSERMSG victim') && delivery.at > takenAt);
    assert.deepEqual(fromVictim, [], 'nothing was delivered in the name of the victim after the taker held it');
    // The bystander's name was free all along: it is restored, rooms and all (check() found it).
    assert.equal(bystander.name, 'bystander');
  });

  it('finding 8: a hung worker makes the instance not ready, is killed after WATCHDOG_MS and replaced', async () => {
    const cluster = await start('hung:', { WATCHDOG_MS: '3000' }, 2);
    const instance = cluster.instances[0]!;
    for (let i = 0; i < 4; i++) await cluster.member(`h${i}`, 0);
    // The primary knows each worker's clients from its reports, every second.
    await waitFor('the primary to count the clients', async () => (await instance.probe('/readyz')).body.clients === 4);
    const [hung] = cluster.workerPids(0);
    process.kill(hung!, 'SIGSTOP');
    await waitFor('/readyz to leave the hung worker out', async () => (await instance.probe('/readyz')).status === 503, 5000);
    await waitFor('the watchdog to replace it', () => instance.workerPids.length === 2 && !instance.workerPids.includes(hung!), 15_000);
    await waitFor('/readyz to be ready again', async () => (await instance.probe('/readyz')).status === 200, 15_000);
    const samples = await scrape(instance.healthPort);
    assert.equal(sample(samples, 'chatline_watchdog_kills_total'), 1);
    assert.equal(sample(samples, 'chatline_connections_closed_total', { reason: 'watchdog' }), 2, 'the hung worker had two of the four clients');
    assert.deepEqual(await cluster.check(), []);
  });
});
