import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ChatProcess } from '../helpers/chat-process.js';
import { LineClient, loggedIn } from '../helpers/client.js';
import { sample, type Samples, scrape } from '../helpers/metrics.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import { waitFor } from '../helpers/wait.js';

// What an operator watches: /metrics counts a known workload exactly, for the whole instance,
// in both modes; /readyz and /healthz speak for the whole instance; a worker that is replaced
// or stuck neither resets the instance's counters nor fails a scrape.

/**
 * A known workload on `ports` (spread over them): 3 connections, 3 logins and one taken name,
 * 2 JOINs, 3 DMs, 2 room messages, one DM to nobody, one QUIT and one hang-up.
 */
async function knownWorkload(ports: number[]): Promise<LineClient> {
  const port = (i: number) => ports[i % ports.length]!;
  const alice = await loggedIn(port(0), 'alice');
  const bob = await loggedIn(port(1), 'bob');
  const carol = await LineClient.connect(port(2));
  await carol.command('LOGIN ALICE', 'ERROR ALICE IS ALREADY TAKEN');
  await carol.command('LOGIN carol', 'OK');
  await alice.command('JOIN #room', 'OK');
  await bob.command('JOIN #room', 'OK');
  for (let i = 0; i < 3; i++) await alice.command(`MSG bob dm${i}`, 'OK');
  for (let i = 0; i < 2; i++) await alice.command(`MSG #room all${i}`, 'OK', `GOTROOMMSG alice #room all${i}`);
  await alice.command('MSG nobody x', 'ERROR nobody NOT FOUND');
  assert.deepEqual(await bob.take(5), ['GOTUSERMSG alice dm0', 'GOTUSERMSG alice dm1', 'GOTUSERMSG alice dm2',
    'GOTROOMMSG alice #room all0', 'GOTROOMMSG alice #room all1']);
  await carol.command('QUIT', 'OK');
  await carol.closed;
  bob.destroy();
  return alice;
}

async function assertWorkloadCounted(healthPort: number): Promise<Samples> {
  const samples = await waitFor('the closes to be counted', async () => {
    const now = await scrape(healthPort);
    return sample(now, 'chatline_connections_closed_total', { reason: 'client' }) === 1 ? now : undefined;
  });
  const expected: [string, Record<string, string>, number][] = [
    ['chatline_connections_opened_total', {}, 3],
    ['chatline_connections_open', {}, 1],
    ['chatline_connections_closed_total', { reason: 'quit' }, 1],
    ['chatline_logins_total', { result: 'ok' }, 3],
    ['chatline_logins_total', { result: 'taken' }, 1],
    ['chatline_commands_total', { command: 'LOGIN', result: 'ok' }, 3],
    ['chatline_commands_total', { command: 'LOGIN', result: 'error' }, 1],
    ['chatline_commands_total', { command: 'JOIN', result: 'ok' }, 2],
    ['chatline_commands_total', { command: 'MSG', result: 'ok' }, 5],
    ['chatline_commands_total', { command: 'MSG', result: 'error' }, 1],
    ['chatline_commands_total', { command: 'QUIT', result: 'ok' }, 1],
    ['chatline_messages_accepted_total', { kind: 'dm' }, 3],
    ['chatline_messages_accepted_total', { kind: 'room' }, 2],
    ['chatline_deliveries_written_total', {}, 5],
    ['chatline_command_duration_seconds_count', { command: 'MSG' }, 6],
    ['chatline_internal_errors_total', {}, 0],
    ['chatline_backplane_up', {}, -1],
  ];
  for (const [name, labels, value] of expected) {
    if (value === -1) continue;
    assert.equal(sample(samples, name, labels), value, `${name} ${JSON.stringify(labels)}`);
  }
  return samples;
}

describe('metrics and health, embedded', () => {
  let chat: ChatProcess;
  before(async () => { chat = await ChatProcess.start({ REDIS_URL: '' }); });
  after(async () => { await chat?.stop(); });

  it('counts a known workload exactly on /metrics', async () => {
    const alice = await knownWorkload([chat.port]);
    const samples = await assertWorkloadCounted(chat.healthPort);
    assert.equal(sample(samples, 'chatline_backplane_up'), 1);
    const ready = await chat.probe('/readyz');
    assert.equal(ready.status, 200);
    assert.equal(ready.body.clients, 1);
    alice.destroy();
  });
});

describe('metrics and health, Redis mode (2 workers)', () => {
  let redis: TestRedis;
  let chat: ChatProcess;
  before(async () => {
    redis = await startRedis();
    // A watchdog far away, so a stopped worker stays stopped for as long as the test wants.
    chat = await ChatProcess.start({ REDIS_URL: redis.url, REDIS_PREFIX: 'ops:', WATCHDOG_MS: '60000' }, 2);
  });
  after(async () => {
    for (const pid of chat?.workerPids ?? []) {
      try { process.kill(pid, 'SIGCONT'); } catch { /* gone */ }
    }
    await chat?.stop();
    await redis?.stop();
  });

  it('sums the workers: a known workload counted exactly, clients counted instance-wide', async () => {
    const alice = await knownWorkload([chat.port]);
    const samples = await assertWorkloadCounted(chat.healthPort);
    assert.equal(sample(samples, 'chatline_backplane_up'), 2, 'both workers up');
    // Workers report every second: the count follows within one report.
    const ready = await waitFor('/readyz to count the one client left', async () => {
      const probe = await chat.probe('/readyz');
      return probe.body.clients === 1 ? probe : undefined;
    });
    assert.equal(ready.status, 200);
    assert.equal((ready.body.workers as unknown[]).length, 2);
    // Both workers served this workload (round-robin), or the sum proved nothing.
    assert.equal(chat.workersThatLogged('connection opened').size, 2);
    alice.destroy();
  });

  it('answers a scrape without a stopped worker, with its last numbers, and reports it not ready', async () => {
    const before = await scrape(chat.healthPort);
    const [stopped] = chat.workerPids;
    process.kill(stopped!, 'SIGSTOP');
    try {
      const started = performance.now();
      const during = await scrape(chat.healthPort);
      assert.ok(performance.now() - started < 5000, 'the scrape did not wait for the stopped worker');
      assert.equal(sample(during, 'chatline_scrape_workers_unanswered'), 1);
      assert.equal(sample(during, 'chatline_logins_total', { result: 'ok' }), sample(before, 'chatline_logins_total', { result: 'ok' }));
      await waitFor('/readyz to leave out the stopped worker', async () => (await chat.probe('/readyz')).status === 503, 8000);
      assert.equal((await chat.probe('/healthz')).status, 200, 'stopped for less than WATCHDOG_MS is not stuck yet');
    } finally {
      process.kill(stopped!, 'SIGCONT');
    }
    await waitFor('/readyz to be ready again', async () => (await chat.probe('/readyz')).status === 200, 8000);
  });

  it('keeps counters monotonic when a worker dies and is replaced', async () => {
    const client = await loggedIn(chat.port, 'counted');
    const before = await scrape(chat.healthPort);
    const logins = sample(before, 'chatline_logins_total', { result: 'ok' });
    const [victim] = chat.workerPids;
    process.kill(victim!, 'SIGKILL');
    await waitFor('a replacement worker', () => chat.workerPids.length === 2 && !chat.workerPids.includes(victim!), 15_000);
    const after = await scrape(chat.healthPort);
    assert.equal(sample(after, 'chatline_logins_total', { result: 'ok' }), logins, 'no reset, no double count');
    assert.equal(sample(after, 'chatline_worker_restarts_total'), 1);
    client.destroy();
  });
});
