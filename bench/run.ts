import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, totalmem } from 'node:os';
import { parseArgs } from 'node:util';
import { ChatProcess } from '../test/helpers/chat-process.js';
import { rssBytes } from '../test/helpers/process-memory.js';
import { startRedisProcess, type ProcessRedis } from '../test/helpers/redis.js';
import type { Result } from './measure.js';
import { chart } from './chart.js';
import { connectMany, dm, type Endpoint, room, type Timing } from './scenarios.js';

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
  /** Connections each worker accepted since the last call, e.g. "20/20". */
  split: () => string;
  sample: () => Promise<{ serverBytes: number; redisBytes: number }>;
  stop: () => Promise<void>;
}

const childrenOf = (pid: number) =>
  readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);

async function deploy(mode: string, redis: ProcessRedis | undefined, workers: number): Promise<Deployment> {
  const env: Record<string, string> = { RATE_PER_SEC: '0', MAX_CONNECTIONS: '100000', REDIS_URL: redis?.url ?? '',
    REDIS_PREFIX: `bench${Date.now()}:` };
  const chat = await ChatProcess.start(env, workers);
  // Workers only: the cluster primary holds no clients.
  const servingPids = () => (redis ? childrenOf(chat.pid) : [chat.pid]);
  let seen = 0;
  return {
    mode,
    endpoints: [{ host: '127.0.0.1', port: chat.port }],
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
  const modes: [string, ProcessRedis | undefined, number][] = [
    ['embedded', undefined, 1], ['redis, 1 worker', redis, 1], ['redis, 2 workers', redis, 2],
  ];
  try {
    for (const [mode, backing, workers] of modes) {
      const deployment = await deploy(mode, backing, workers);
      deployment.split();
      try {
        for (const run of [
          () => dm(mode, deployment.endpoints, 20, 1, timing),
          () => dm(mode, deployment.endpoints, 20, 4, timing),
          () => dm(mode, deployment.endpoints, 100, 16, timing),
          () => room(mode, deployment.endpoints, 4, 500, 4, timing),
        ]) {
          const result = await run();
          result.notes.push(`connections per worker: ${deployment.split()}`);
          console.error(`  ${mode} | ${result.scenario}: ${result.rate}/s`);
          results.push(result);
        }
        if (workers === 2 || !backing) {
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
    String(r.lost), String(r.duplicated), String(r.outOfOrder), r.extra ? '' : r.loadgenCores.toFixed(2),
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
