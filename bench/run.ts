import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, totalmem } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { ChatProcess } from '../test/helpers/chat-process.js';
import { rssBytes } from '../test/helpers/process-memory.js';
import { startRedisProcess, type ProcessRedis } from '../test/helpers/redis.js';
import type { Result } from './measure.js';
import { chart } from './chart.js';
import { connectMany, dm, type Endpoint, type Placement, room, type Timing } from './scenarios.js';

// npm run bench                 the standard matrix on this machine (starts its own servers)
// npm run bench -- --endpoints 10.0.0.5:8888,10.0.0.6:8888 --scenario dm --pairs 20 --window 4
//                               one scenario against servers that are already running

const { values: args } = parseArgs({
  options: {
    endpoints: { type: 'string' },
    scenario: { type: 'string', default: 'dm' },
    pairs: { type: 'string', default: '20' },
    window: { type: 'string', default: '4' },
    rooms: { type: 'string', default: '4' },
    members: { type: 'string', default: '500' },
    clients: { type: 'string', default: '20000' },
    seconds: { type: 'string', default: '4' },
  },
});
const timing: Timing = { warmupMs: 1000, measureMs: Number(args.seconds) * 1000 };
const RESULTS = new URL('./results/', import.meta.url);

interface Deployment {
  mode: string;
  endpoints: Endpoint[];
  /** Set when there is more than one worker to tell apart. */
  placement: Placement | undefined;
  /** Connections each worker accepted since the last call, e.g. "20/20". */
  split: () => string;
  sample: () => Promise<{ serverBytes: number; redisBytes: number }>;
  stop: () => Promise<void>;
}

const childrenOf = (pid: number) =>
  readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);

async function deploy(mode: string, redis: ProcessRedis | undefined, workers: number, extraEnv: Record<string, string>): Promise<Deployment> {
  const env: Record<string, string> = { RATE_PER_SEC: '0', MAX_CONNECTIONS: '100000', REDIS_URL: redis?.url ?? '',
    REDIS_PREFIX: `bench${Date.now()}:`, ...extraEnv };
  const chat = await ChatProcess.start(env, workers);
  // Workers only: the cluster primary holds no clients.
  const servingPids = () => (redis ? childrenOf(chat.pid) : [chat.pid]);
  let seen = 0;
  // Which worker holds each open connection, by client address, from the workers' "connection
  // opened" and "connection closed" logs (closed ones are dropped: ports get reused).
  const workerByRemote = new Map<unknown, string>();
  let read = 0;
  const placement: Placement = async (client) => {
    const remote = `${client.socket.localAddress}:${client.socket.localPort}`;
    const deadline = performance.now() + 5000;
    while (performance.now() < deadline) {
      for (; read < chat.logs.length; read++) {
        const line = chat.logs[read]!;
        if (line.msg === 'connection opened') workerByRemote.set(line.remote, String(line.worker));
        if (line.msg === 'connection closed') workerByRemote.delete(line.remote);
      }
      const worker = workerByRemote.get(remote);
      if (worker) return worker;
      await sleep(2);
    }
    throw new Error(`no worker logged opening ${remote}`);
  };
  return {
    mode,
    endpoints: [{ host: '127.0.0.1', port: chat.port }],
    placement: workers > 1 ? placement : undefined,
    split() {
      const opened = chat.logs.slice(seen).filter((line) => line.msg === 'connection opened');
      seen = chat.logs.length;
      const perWorker = new Map<unknown, number>();
      for (const line of opened) perWorker.set(line.worker, (perWorker.get(line.worker) ?? 0) + 1);
      return [...perWorker.values()].join('/');
    },
    async sample() {
      const serverBytes = servingPids().reduce((sum, pid) => sum + rssBytes(pid), 0);
      const redisBytes = redis ? Number(/used_memory:(\d+)/.exec(await redis.client.info('memory'))![1]) : 0;
      return { serverBytes, redisBytes };
    },
    stop: async () => { await chat.stop(); },
  };
}

function redisPublishRate(redis: ProcessRedis, pipeline: number): number {
  const out = execFileSync('redis-benchmark', ['-p', String(redis.port), '-n', '200000', '-q', '-P', String(pipeline),
    'PUBLISH', 'bench-channel', 'hello'], { encoding: 'utf8' });
  return Number(/([\d.]+) requests per second/.exec(out)![1]);
}

async function standardMatrix(): Promise<{ results: Result[]; reference: Record<string, number> }> {
  const results: Result[] = [];
  const redis = await startRedisProcess();
  const reference = { publish: redisPublishRate(redis, 1), publishP16: redisPublishRate(redis, 16) };
  console.error(`redis-benchmark PUBLISH: ${reference.publish}/s unpipelined, ${reference.publishP16}/s with -P 16`);
  const kernel = { CONNECTION_DISTRIBUTION: 'kernel' };
  // The delivery scenarios run on round-robin distribution (the default), which is what puts
  // senders and receivers on different workers; the kernel's spread is measured on connect only.
  const modes: { mode: string; backing: ProcessRedis | undefined; workers: number; env: Record<string, string>; deliveries: boolean }[] = [
    { mode: 'embedded', backing: undefined, workers: 1, env: {}, deliveries: true },
    { mode: 'redis, 1 worker', backing: redis, workers: 1, env: {}, deliveries: true },
    { mode: 'redis, 2 workers', backing: redis, workers: 2, env: {}, deliveries: true },
    { mode: 'redis, 2 workers, kernel distribution', backing: redis, workers: 2, env: kernel, deliveries: false },
  ];
  try {
    for (const { mode, backing, workers, env, deliveries } of modes) {
      const deployment = await deploy(mode, backing, workers, env);
      deployment.split();
      try {
        for (const run of deliveries ? [
          () => dm(mode, deployment.endpoints, 20, 1, timing, deployment.placement),
          () => dm(mode, deployment.endpoints, 20, 4, timing, deployment.placement),
          () => dm(mode, deployment.endpoints, 100, 16, timing, deployment.placement),
          () => room(mode, deployment.endpoints, 4, 500, 4, timing),
        ] : []) {
          const result = await run();
          result.notes.push(`connections per worker: ${deployment.split()}`);
          if (deployment.placement && result.scenario.startsWith('dm')) result.notes.push('every sender and its receiver on different workers');
          console.error(`  ${mode} | ${result.scenario}: ${result.rate}/s`);
          results.push(result);
        }
        if (workers === 2 || !backing) {
          if (!deliveries) {
            // The other deployments' JIT warmed up on the delivery scenarios (2000 logins in
            // room alone); a cold one would be measured compiling its login path.
            await connectMany(mode, deployment.endpoints, 4000, deployment.sample);
            await sleep(3000); // the warm-up's clients log out
            deployment.split();
          }
          // One process may hold 20000 sockets here (ulimit -n), so embedded stays below that.
          const result = await connectMany(mode, deployment.endpoints, backing ? 20_000 : 18_000, deployment.sample);
          result.notes.push(`connections per worker: ${deployment.split()}`);
          console.error(`  ${mode} | ${result.scenario}: ${result.rate} logins/s`);
          results.push(result);
        }
      } finally {
        await deployment.stop();
      }
    }
  } finally {
    await redis.stop();
  }
  return { results, reference };
}

function table(results: Result[], reference: Record<string, number>): string {
  const embedded = new Map(results.filter((r) => r.mode === 'embedded').map((r) => [r.scenario, r.rate]));
  const header = ['mode', 'scenario', 'per second', '÷ PUBLISH', '÷ PUBLISH -P16', 'vs embedded', 'p50 ms', 'p90 ms', 'p99 ms',
    'max ms', 'lost', 'dup', 'reordered', 'loadgen cores', 'per client'];
  const rows = results.map((r) => [
    r.mode, r.scenario, String(r.rate),
    reference.publish ? (r.rate / reference.publish).toFixed(2) : '',
    reference.publishP16 ? (r.rate / reference.publishP16).toFixed(3) : '',
    embedded.get(r.scenario) ? `${Math.round((r.rate / embedded.get(r.scenario)!) * 100)}%` : '',
    ...(r.extra ? ['', '', '', ''] : [r.latencyMs.p50, r.latencyMs.p90, r.latencyMs.p99, r.latencyMs.max].map(String)),
    String(r.lost), String(r.duplicated), String(r.outOfOrder), r.loadgenCores.toFixed(2),
    r.extra ? `${r.extra.serverBytesPerClient} B server, ${r.extra.redisBytesPerClient} B redis` : '',
  ]);
  const lines = [header, header.map(() => '---'), ...rows].map((cells) => `| ${cells.join(' | ')} |`);
  return lines.join('\n');
}

async function main(): Promise<void> {
  let results: Result[];
  let reference: Record<string, number> = {};
  if (args.endpoints) {
    const endpoints = args.endpoints.split(',').map((hp) => {
      const [host, port] = hp.split(':');
      return { host: host!, port: Number(port) };
    });
    const noSample = async () => ({ serverBytes: 0, redisBytes: 0 });
    const one = args.scenario === 'room'
      ? await room('external', endpoints, Number(args.rooms), Number(args.members), Number(args.window), timing)
      : args.scenario === 'connect'
        ? await connectMany('external', endpoints, Number(args.clients), noSample)
        : await dm('external', endpoints, Number(args.pairs), Number(args.window), timing);
    if (args.scenario === 'dm') one.notes.push('pairs are consecutive connections: which workers they are on is not known');
    results = [one];
  } else {
    ({ results, reference } = await standardMatrix());
  }
  const machine = `${cpus()[0]?.model ?? 'cpu'} × ${availableParallelism()}, ${Math.round(totalmem() / 2 ** 30)} GiB, node ${process.version}`;
  console.log(`\nchatline bench — ${new Date().toISOString()} — ${machine}\n`);
  console.log(table(results, reference));
  for (const r of results) for (const note of r.notes) console.log(`note: ${r.mode} | ${r.scenario}: ${note}`);
  const bad = results.filter((r) => r.lost || r.duplicated || r.outOfOrder);
  for (const r of bad) {
    console.log(`\n!!! DELIVERY ERRORS in ${r.mode} | ${r.scenario}: ${r.lost} lost, ${r.duplicated} duplicated, ${r.outOfOrder} out of order !!!`);
  }
  mkdirSync(RESULTS, { recursive: true });
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  writeFileSync(new URL(`bench-${stamp}.json`, RESULTS), JSON.stringify({ machine, reference, results }, null, 2));
  writeFileSync(new URL(`bench-${stamp}.svg`, RESULTS), chart(results));
  console.log(`\nsaved bench/results/bench-${stamp}.json and .svg (${readdirSync(RESULTS).length} files there)`);
  process.exitCode = bad.length ? 1 : 0;
}

await main().catch((error: Error) => {
  console.error(`bench failed: ${error.message}`);
  process.exitCode = 2;
});
