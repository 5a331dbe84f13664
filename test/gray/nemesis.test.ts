import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { COMMAND_BUDGET_MS } from '../../src/backplane/redis/reply-wait.js';
import { GrayCluster } from '../helpers/gray-cluster.js';
import { sleepRedis } from '../helpers/redis.js';
import type { TrackedClient } from '../helpers/tracked-client.js';

// A randomized nemesis, Jepsen-style: clients run random commands against 2 instances × 2
// workers while a nemesis injects random gray faults (Redis stalls, a slow or stalled or
// black-holed or cut network to Redis, paused and killed workers, subscribers cut, Redis
// restarted empty). Afterwards the checker judges the history and the state.
//
// Seeded: CHATLINE_NEMESIS_SEED repeats a run, CHATLINE_NEMESIS_SECONDS sets its length; the
// seed is printed, and named in the failure message; CHATLINE_HISTORY_DIR=<dir> keeps the
// history of a failed run there (as for every gray-failure test).

const SEED = Number(process.env.CHATLINE_NEMESIS_SEED ?? Math.floor(Math.random() * 2 ** 31));
const RUN_MS = Number(process.env.CHATLINE_NEMESIS_SECONDS ?? 60) * 1000;
const NODE_TTL_MS = 4000;
const NAMES = Array.from({ length: 8 }, (_, i) => `n${i}`);
const ROOMS = ['#a', '#b', '#c'];
const CLIENTS = 12;
/** Time for a delivery to reach the test client after Redis ran the publish. */
const DELIVERY_SLACK_MS = 500;

/** mulberry32: a small seeded generator, so a run can be repeated exactly as far as the faults and commands go. */
function generator(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe(`nemesis (seed ${SEED}, ${RUN_MS / 1000} s)`, () => {
  let cluster: GrayCluster;
  // One stream of numbers for the nemesis and one per client, so the faults (and each client's
  // commands) repeat with the seed whatever order the async steps interleave in.
  const streams = new Map<number, () => number>();
  const streamOf = (id: number) => {
    if (!streams.has(id)) streams.set(id, generator(SEED + id * 7919));
    return streams.get(id)!;
  };
  const NEMESIS = 0;
  const pick = <T>(items: readonly T[], stream = NEMESIS): T => items[Math.floor(streamOf(stream)() * items.length)]!;
  const between = (low: number, high: number, stream = NEMESIS) => low + streamOf(stream)() * (high - low);
  const faults: string[] = [];

  before(async () => {
    console.log(`nemesis seed ${SEED} (repeat with CHATLINE_NEMESIS_SEED=${SEED})`);
    cluster = await GrayCluster.start({
      prefix: 'nemesis:', nodeTtlMs: NODE_TTL_MS, proxy: true,
      // The watchdog outlasts the longest pause the nemesis makes; the primary restarts killed workers.
      env: { WATCHDOG_MS: String(NODE_TTL_MS * 4) },
    });
  });
  after(async () => { await cluster?.stop(); });

  /** One client's random walk until `until`. */
  async function walk(client: TrackedClient, until: number): Promise<void> {
    const random = streamOf(client.id);
    while (performance.now() < until) {
      if (!client.open) {
        if (random() < 0.5) await client.connect().catch(() => {});
        await sleep(between(50, 300, client.id));
        continue;
      }
      const roll = random();
      if (!client.name) await client.command(`LOGIN ${pick(NAMES, client.id)}`);
      else if (roll < 0.35) await client.command(`MSG ${pick(NAMES, client.id)} {tag}`);
      else if (roll < 0.55) await client.command(`MSG ${pick(ROOMS, client.id)} {tag}`);
      else if (roll < 0.7) await client.command(`JOIN ${pick(ROOMS, client.id)}`);
      else if (roll < 0.8) await client.command(`PART ${pick(ROOMS, client.id)}`);
      else if (roll < 0.86) await client.command('LOGOUT');
      else if (roll < 0.9) client.close();
      else if (roll < 0.92) await client.command('QUIT');
      else await client.command('PING');
      await sleep(between(0, 40, client.id));
    }
  }

  /** One random fault, healed before it returns. */
  async function fault(): Promise<void> {
    const roll = streamOf(NEMESIS)();
    const worker = () => pick(cluster.instances.flatMap((instance) => instance.workerPids));
    if (roll < 0.2) {
      const seconds = Math.round(between(2, 25)) / 10;
      faults.push(`DEBUG SLEEP ${seconds}`);
      const { awake } = await sleepRedis(cluster.redis.url, seconds);
      await awake;
    } else if (roll < 0.35) {
      const pid = worker();
      const long = streamOf(NEMESIS)() < 0.4;
      const pauseMs = long ? between(1.2, 1.6) * NODE_TTL_MS : between(0.05, 0.45) * NODE_TTL_MS;
      faults.push(`SIGSTOP worker ${pid} for ${Math.round(pauseMs)} ms`);
      process.kill(pid, 'SIGSTOP');
      await sleep(pauseMs);
      process.kill(pid, 'SIGCONT');
    } else if (roll < 0.45) {
      faults.push('CLIENT KILL TYPE pubsub');
      const admin = new Redis(cluster.redis.url, { lazyConnect: true });
      await admin.connect();
      await admin.call('CLIENT', 'KILL', 'TYPE', 'pubsub');
      admin.disconnect();
    } else if (roll < 0.6) {
      const ms = Math.round(between(50, 600));
      const direction = pick(['toRedis', 'toClient', 'both'] as const);
      faults.push(`network delay ${ms} ms ${direction}`);
      const delay = cluster.proxy!.delay(ms, { direction });
      await sleep(between(1000, 3000));
      delay.clear();
    } else if (roll < 0.72) {
      const ms = between(300, 2500);
      faults.push(`network stall ${Math.round(ms)} ms`);
      const stall = cluster.proxy!.stall({});
      await sleep(ms);
      stall.clear();
    } else if (roll < 0.8) {
      const links = pick([':deliveries', ':commands']);
      faults.push(`blackhole ${links} to client`);
      const blackhole = cluster.proxy!.blackhole({ links, direction: 'toClient', scope: 'open' });
      await sleep(between(1000, 3000));
      blackhole.clear();
    } else if (roll < 0.88) {
      faults.push('cut every Redis connection');
      cluster.proxy!.cut();
    } else if (roll < 0.95) {
      const pid = worker();
      faults.push(`SIGKILL worker ${pid}`);
      process.kill(pid, 'SIGKILL');
    } else {
      faults.push('Redis killed and restarted empty');
      await cluster.redis.kill();
      await sleep(between(200, 1500));
      await cluster.redis.restart();
    }
  }

  it('keeps every invariant through random gray faults', async () => {
    const clients = await Promise.all(Array.from({ length: CLIENTS }, (_, i) => cluster.client(i % 2)));
    const until = performance.now() + RUN_MS;
    const walking = clients.map((client) => walk(client, until));
    while (performance.now() < until - 3000) {
      await sleep(between(500, 2500));
      await fault();
    }
    await Promise.all(walking);
    // Cutting connections and black-holing replies lose answers to commands Redis did run:
    // such a message may be delivered, within the documented bound of its sending.
    const violations = await cluster.check(undefined, { lostReplyBoundMs: COMMAND_BUDGET_MS + DELIVERY_SLACK_MS });
    const operations = cluster.history.operations.length;
    const deliveries = cluster.history.deliveries.length;
    console.log(`nemesis seed ${SEED}: ${faults.length} faults, ${operations} commands, ${deliveries} deliveries, ${violations.length} violations`);
    assert.deepEqual(violations, [], `seed ${SEED} (repeat with CHATLINE_NEMESIS_SEED=${SEED}); faults: ${faults.join('; ')}`);
    assert.ok(operations > 200 && deliveries > 50, 'the clients did real work');
  });
});
