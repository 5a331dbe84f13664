import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, totalmem } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import type { Redis } from 'ioredis';
import { ChatProcess, useCompiledBuild } from '../test/helpers/chat-process.js';
import { rssBytes } from '../test/helpers/process-memory.js';
import { startRedisProcess, type ProcessRedis } from '../test/helpers/redis.js';
import { RedisCluster } from '../test/helpers/redis-cluster.js';
import { chatline, type Dialect, irc } from './dialects.js';
import type { Result } from './measure.js';
import { chart } from './chart.js';
import { ngircdInstalled, startNgircd } from './ngircd.js';
import { OTHER_PROGRAMS, processCpu, redisCpuMicrosOf, settle, type SubscriberWatch, watchSubscribers } from './observe.js';
import { connectMany, dm, type Endpoint, type Observe, type Placement, room, type Timing } from './scenarios.js';

// npm run bench                 the standard matrix on this machine (starts its own servers)
// npm run bench -- --room-members 1000,5000 --room-seconds 4 --scenarios dm,room,connect
//                               the same, with other one-room sizes or measured windows, or some scenarios only
// npm run bench -- --reference none | --reference-members 1000
//                               without ngIRCd, or with it on fewer one-room sizes (its 5000-member
//                               channel takes 2–3 minutes to fill: see ngircd.ts)
// npm run bench -- --modes cluster --scenarios dm,room --room-members 1000 --reference none
//                               some deployments only: embedded, redis (= redis-1w, redis-2w, kernel),
//                               cluster (= cluster-1p, cluster-3p: a Redis Cluster of 1 or 3 primaries)
// npm run bench -- --endpoints 10.0.0.5:8888,10.0.0.6:8888 --scenario dm --pairs 20 --window 4
//                               one scenario against servers that are already running
//                               (--scenario room --dialect irc: against an IRC server)

const { values: args } = parseArgs({
  options: {
    endpoints: { type: 'string' },
    scenario: { type: 'string', default: 'dm' },
    dialect: { type: 'string', default: 'chatline' },
    pairs: { type: 'string', default: '20' },
    window: { type: 'string', default: '4' },
    rooms: { type: 'string', default: '4' },
    members: { type: 'string', default: '500' },
    clients: { type: 'string', default: '20000' },
    seconds: { type: 'string', default: '4' },
    'room-members': { type: 'string', default: '1000,5000' },
    'room-seconds': { type: 'string' },
    reference: { type: 'string', default: 'ngircd' },
    'reference-members': { type: 'string' },
    scenarios: { type: 'string', default: 'dm,room,connect' },
    // The 1-primary Cluster is left out unless asked for: it would take the run past 7 minutes.
    modes: { type: 'string', default: 'embedded,redis,cluster-3p' },
  },
});
const timing: Timing = { warmupMs: 1000, measureMs: Number(args.seconds) * 1000 };
const bigRoomTiming: Timing = { warmupMs: 1000, measureMs: Number(args['room-seconds'] ?? args.seconds) * 1000 };
/** The one-room rows: a room of each of these sizes, one sender, window 4 (as the issue measured). */
const bigRooms = args['room-members'].split(',').filter(Boolean).map(Number);
/** The one-room sizes ngIRCd is measured on too (all of them unless told). */
const referenceRooms = (args['reference-members'] ?? args['room-members']).split(',').filter(Boolean).map(Number);
const scenarios = new Set(args.scenarios.split(','));
/** The chatline deployments the matrix runs (ngIRCd goes by --reference): names, or groups of them. */
const MODE_GROUPS: Record<string, string[]> = {
  embedded: ['embedded'],
  redis: ['redis-1w', 'redis-2w', 'kernel'],
  cluster: ['cluster-1p', 'cluster-3p'],
};
const KNOWN_MODES = new Set(Object.values(MODE_GROUPS).flat());
const modes = new Set(args.modes.split(',').filter(Boolean).flatMap((name) => {
  if (MODE_GROUPS[name]) return MODE_GROUPS[name];
  if (KNOWN_MODES.has(name)) return [name];
  console.error(`--modes: no mode ${name}; known: ${[...new Set([...Object.keys(MODE_GROUPS), ...KNOWN_MODES])].join(', ')}`);
  process.exit(2);
}));
const RESULTS = new URL('./results/', import.meta.url);

interface Deployment {
  mode: string;
  endpoints: Endpoint[];
  dialect: Dialect;
  /** See RoomOptions.connectConcurrency. */
  connectConcurrency?: number;
  workers: number;
  /** Set when there is more than one worker to tell apart. */
  placement: Placement | undefined;
  /** Connections each worker accepted since the last call, e.g. "20/20". */
  split: () => string;
  sample: () => Promise<{ serverBytes: number; redisBytes: number }>;
  /** The server processes, by label. */
  processes: () => Record<string, number>;
  /** CPU by process (and Redis' own) over a measured window. */
  observe: Observe;
  /** Redis mode: Redis' CPU while idle, measured before each row. */
  redisIdle?: RedisIdle;
  /** Redis mode: starts watching the subscriber connections for a row. */
  watchSubscribers?: () => Promise<() => Promise<SubscriberWatch>>;
  stop: () => Promise<void>;
}

const childrenOf = (pid: number) =>
  readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);

/**
 * Redis' CPU when the row's servers are idle, in microseconds per second: heartbeats, probes,
 * its own cron. Measured before each row and taken off the window's figure, so a row with few
 * messages (a 5000-member room sends a few dozen a second) is not charged for Redis' idling.
 */
interface RedisIdle {
  microsPerSecond: number;
  /** Redis servers it is summed over (a Cluster's nodes). */
  nodes: number;
  measure(): Promise<void>;
}

function redisIdle(backplane: Backplane | undefined): RedisIdle | undefined {
  if (!backplane) return undefined;
  const idle: RedisIdle = {
    microsPerSecond: 0,
    nodes: backplane.nodes.length,
    async measure() {
      const before = await redisCpuMicrosOf(backplane.nodes);
      const started = performance.now();
      await sleep(1000);
      idle.microsPerSecond = ((await redisCpuMicrosOf(backplane.nodes)) - before) / ((performance.now() - started) / 1000);
    },
  };
  return idle;
}

/** The observe hook for a set of processes, with Redis' own CPU (all its nodes) when there is a Redis. */
function observer(processes: () => Record<string, number>, backplane: Backplane | undefined, idle: RedisIdle | undefined): Observe {
  return async () => {
    const redisBefore = backplane ? await redisCpuMicrosOf(backplane.nodes) : 0;
    const started = performance.now();
    const cores = processCpu(processes());
    return async (generatorCores) => {
      const used = cores(generatorCores);
      if (!backplane) return { cores: used };
      const seconds = (performance.now() - started) / 1000;
      return {
        cores: used,
        redisCpuMicros: (await redisCpuMicrosOf(backplane.nodes)) - redisBefore,
        redisIdleMicros: Math.round((idle?.microsPerSecond ?? 0) * seconds),
      };
    };
  };
}

/**
 * The Redis a deployment runs on: one server, or a Cluster's nodes. Its CPU, memory and
 * subscribers are summed over all the nodes (every node of the bench's Clusters is a primary).
 */
interface Backplane {
  /** What tells chatline where Redis is: REDIS_URL or REDIS_CLUSTER_NODES. */
  env: Record<string, string>;
  /** Its server processes, by label, for the CPU columns. */
  processes: Record<string, number>;
  /** A connection to each node, for INFO and CLIENT LIST. */
  nodes: Redis[];
  /** Stops what was started for this deployment alone (a Cluster); the shared Redis has none. */
  stop?: () => Promise<void>;
}

function oneRedis(redis: ProcessRedis): Backplane {
  return { env: { REDIS_URL: redis.url }, processes: { redis: redis.pid }, nodes: [redis.client] };
}

/**
 * A Cluster of `primaries` primaries for one deployment. No replicas: on 2 cores they would be
 * more processes competing for the CPU, replaying every write, and chatline never reads from
 * them. cluster-node-timeout is Redis' default 15 s, not the tests' 1 s: no node under load
 * should be suspected of failing; nothing here fails over.
 */
async function redisCluster(primaries: number): Promise<Backplane> {
  const cluster = await RedisCluster.start({ primaries, replicasPerPrimary: 0, nodeTimeoutMs: 15_000 });
  const nodes = (await cluster.primaries()).sort((a, b) => a.port - b.port);
  return {
    env: { REDIS_CLUSTER_NODES: cluster.seeds.join(',') },
    processes: Object.fromEntries(nodes.map((node, i) => [`redis primary ${i + 1}`, node.pid!])),
    nodes: nodes.map((node) => node.admin),
    stop: () => cluster.stop(),
  };
}

/** Deploys chatline on a Cluster started for it, and stops the Cluster with it (or if it fails to start). */
async function deployOnCluster(mode: string, primaries: number, workers: number): Promise<Deployment> {
  const backplane = await redisCluster(primaries);
  try {
    return await deploy(mode, backplane, workers, {});
  } catch (error) {
    await backplane.stop!();
    throw error;
  }
}

async function deploy(mode: string, backplane: Backplane | undefined, workers: number, extraEnv: Record<string, string>): Promise<Deployment> {
  const env: Record<string, string> = { RATE_PER_SEC: '0', MAX_CONNECTIONS: '100000', REDIS_URL: '',
    REDIS_PREFIX: `bench${Date.now()}:`, ...backplane?.env, ...extraEnv };
  const chat = await ChatProcess.start(env, workers);
  // Workers only: the cluster primary holds no clients.
  const servingPids = () => (backplane ? childrenOf(chat.pid) : [chat.pid]);
  const processes = (): Record<string, number> => (backplane
    ? { primary: chat.pid, ...Object.fromEntries(servingPids().sort((a, b) => a - b).map((pid, i) => [`worker ${i + 1}`, pid])), ...backplane.processes }
    : { chatline: chat.pid });
  const idle = redisIdle(backplane);
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
    dialect: chatline,
    workers,
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
      const used = async (node: Redis) => Number(/used_memory:(\d+)/.exec(await node.info('memory'))![1]);
      const redisBytes = (await Promise.all((backplane?.nodes ?? []).map(used))).reduce((sum, bytes) => sum + bytes, 0);
      return { serverBytes, redisBytes };
    },
    processes,
    observe: observer(processes, backplane, idle),
    ...(idle ? { redisIdle: idle } : {}),
    ...(backplane ? { watchSubscribers: () => watchSubscribers(backplane.nodes, chat.healthPort) } : {}),
    stop: async () => {
      await chat.stop();
      await backplane?.stop?.();
    },
  };
}

/** ngIRCd on a free loopback port, for the room rows' reference line. */
async function deployNgircd(): Promise<Deployment> {
  const server = await startNgircd();
  return {
    mode: `ngIRCd ${server.version} (reference)`,
    endpoints: [{ host: '127.0.0.1', port: server.port }],
    dialect: irc(server.operator),
    // Its listen backlog is 10 (listen(sock, 10) in conn.c): fewer than that wait to be accepted.
    connectConcurrency: 8,
    workers: 1,
    placement: undefined,
    split: () => '',
    sample: async () => ({ serverBytes: rssBytes(server.pid), redisBytes: 0 }),
    processes: () => ({ ngIRCd: server.pid }),
    observe: observer(() => ({ ngIRCd: server.pid }), undefined, undefined),
    stop: () => server.stop(),
  };
}

function redisPublishRate(redis: ProcessRedis, pipeline: number): number {
  const out = execFileSync('redis-benchmark', ['-p', String(redis.port), '-n', '200000', '-q', '-P', String(pipeline),
    'PUBLISH', 'bench-channel', 'hello'], { encoding: 'utf8' });
  return Number(/([\d.]+) requests per second/.exec(out)![1]);
}

interface Setup {
  /** Its name for --modes (ngIRCd has none: --reference decides). */
  name?: string;
  start: () => Promise<Deployment>;
  /** The scenarios' rows on this deployment. */
  rows: ((deployment: Deployment) => Promise<Result>)[];
  /** The connect scenario's clients (0: none), and whether to warm the login path up first. */
  connect: { clients: number; warmUp: boolean };
}

async function standardMatrix(): Promise<{ results: Result[]; reference: Record<string, number> }> {
  const results: Result[] = [];
  const redis = await startRedisProcess();
  const reference = { publish: redisPublishRate(redis, 1), publishP16: redisPublishRate(redis, 16) };
  console.error(`redis-benchmark PUBLISH: ${reference.publish}/s unpipelined, ${reference.publishP16}/s with -P 16`);
  const kernel = { CONNECTION_DISTRIBUTION: 'kernel' };
  const options = (d: Deployment) => ({ placement: d.placement, workers: d.workers, observe: d.observe, dialect: d.dialect,
    connectConcurrency: d.connectConcurrency });
  const dms = scenarios.has('dm') ? [
    (d: Deployment) => dm(d.mode, d.endpoints, 20, 1, timing, options(d)),
    (d: Deployment) => dm(d.mode, d.endpoints, 20, 4, timing, options(d)),
    (d: Deployment) => dm(d.mode, d.endpoints, 100, 16, timing, options(d)),
  ] : [];
  const room4x500 = scenarios.has('room') ? [(d: Deployment) => room(d.mode, d.endpoints, 4, 500, 4, timing, options(d))] : [];
  const oneRoom = (sizes: number[]) => (scenarios.has('room')
    ? sizes.map((members) => (d: Deployment) => room(d.mode, d.endpoints, 1, members, 4, bigRoomTiming, options(d)))
    : []);
  const big = oneRoom(bigRooms);
  const connect = (clients: number, warmUp = false) => ({ clients: scenarios.has('connect') ? clients : 0, warmUp });
  const wantReference = args.reference === 'ngircd' && scenarios.has('room');
  const ngircdHere = wantReference && ngircdInstalled();
  if (wantReference && !ngircdHere) console.error('ngircd is not installed (apt-get install -y ngircd): no reference rows');
  // The delivery scenarios run on round-robin distribution (the default), which is what puts
  // senders and receivers on different workers; the kernel's spread is measured on connect only.
  // ngIRCd runs right after Redis mode with 2 workers, the rows it is compared with most.
  // The Clusters (1 and 3 primaries, no replicas) run what Redis mode with 2 workers runs but
  // connect: each is started for its rows and stopped after them.
  const setups: Setup[] = [
    { name: 'embedded', start: () => deploy('embedded', undefined, 1, {}), rows: [...dms, ...room4x500, ...big], connect: connect(18_000) },
    { name: 'redis-1w', start: () => deploy('redis, 1 worker', oneRedis(redis), 1, {}), rows: [...dms, ...room4x500], connect: connect(0) },
    { name: 'redis-2w', start: () => deploy('redis, 2 workers', oneRedis(redis), 2, {}), rows: [...dms, ...room4x500, ...big], connect: connect(20_000) },
    ...(ngircdHere ? [{ start: deployNgircd, rows: [...room4x500, ...oneRoom(referenceRooms)], connect: connect(0) }] : []),
    { name: 'cluster-1p', start: () => deployOnCluster('redis cluster, 1 primary, 2 workers', 1, 2),
      rows: [...dms, ...room4x500, ...big], connect: connect(0) },
    { name: 'cluster-3p', start: () => deployOnCluster('redis cluster, 3 primaries, 2 workers', 3, 2),
      rows: [...dms, ...room4x500, ...big], connect: connect(0) },
    { name: 'kernel', start: () => deploy('redis, 2 workers, kernel distribution', oneRedis(redis), 2, kernel),
      rows: [], connect: connect(20_000, true) },
  ];
  try {
    for (const setup of setups) {
      if (setup.name !== undefined && !modes.has(setup.name)) continue;
      if (setup.rows.length === 0 && setup.connect.clients === 0) continue;
      const deployment = await setup.start();
      const { mode } = deployment;
      deployment.split();
      try {
        for (const run of setup.rows) {
          // What the previous row left behind (thousands of logouts) is not measured in this one.
          const settled = await settle(deployment.processes());
          await deployment.redisIdle?.measure();
          const watching = await deployment.watchSubscribers?.();
          const result = await run(deployment);
          if (settled === undefined) result.notes.push('the servers were still busy 30 s after the previous row; measured anyway');
          else if (settled > 1000) result.notes.push(`waited ${(settled / 1000).toFixed(1)} s for the servers to go idle after the previous row`);
          if (watching) result.subscribers = await watching();
          if (result.redis) {
            const { microsPerSecond, nodes } = deployment.redisIdle!;
            result.notes.push(`Redis idle${nodes > 1 ? ` (its ${nodes} nodes)` : ''}: ${Math.round(microsPerSecond)} µs of CPU per second, taken off its per-message figures`);
          }
          const others = result.cores?.[OTHER_PROGRAMS] ?? 0;
          if (others > 0.3) result.notes.push(`other programs used ${others.toFixed(2)} cores of this machine in the window: compare this row with care`);
          const split = deployment.split();
          // Room rows in Redis mode with 2 workers say where their members are (the split also counts those let go).
          if (split && !result.notes.some((note) => note.startsWith('members per worker'))) result.notes.push(`connections per worker: ${split}`);
          if (deployment.placement && result.scenario.startsWith('dm')) result.notes.push('every sender and its receiver on different workers');
          console.error(`  ${mode} | ${result.scenario}: ${result.rate}/s`);
          results.push(result);
        }
        if (setup.connect.clients > 0) {
          if (setup.connect.warmUp) {
            // The other deployments' JIT warmed up on the delivery scenarios (2000 logins in
            // room alone); a cold one would be measured compiling its login path.
            await connectMany(mode, deployment.endpoints, 4000, deployment.sample);
            await sleep(3000); // the warm-up's clients log out
            deployment.split();
          }
          // One process may hold 20000 sockets here (ulimit -n), so embedded stays below that.
          const result = await connectMany(mode, deployment.endpoints, setup.connect.clients, deployment.sample);
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

const isReference = (r: Result) => r.mode.startsWith('ngIRCd');

function table(results: Result[], reference: Record<string, number>): string {
  const embedded = new Map(results.filter((r) => r.mode === 'embedded').map((r) => [r.scenario, r.rate]));
  const ngircd = new Map(results.filter(isReference).map((r) => [r.scenario, r.rate]));
  const header = ['mode', 'scenario', 'per second', '÷ PUBLISH', '÷ PUBLISH -P16', 'vs embedded', '÷ ngIRCd', 'p50 ms', 'p90 ms', 'p99 ms',
    'max ms', 'lost', 'dup', 'reordered', 'refused', 'loadgen cores', 'per client'];
  const rows = results.map((r) => [
    r.mode, r.scenario, String(r.rate),
    reference.publish ? (r.rate / reference.publish).toFixed(2) : '',
    reference.publishP16 ? (r.rate / reference.publishP16).toFixed(3) : '',
    embedded.get(r.scenario) && !isReference(r) ? `${Math.round((r.rate / embedded.get(r.scenario)!) * 100)}%` : '',
    ngircd.get(r.scenario) && !isReference(r) ? `${(r.rate / ngircd.get(r.scenario)!).toFixed(2)}×` : '',
    ...(r.extra ? ['', '', '', ''] : [r.latencyMs.p50, r.latencyMs.p90, r.latencyMs.p99, r.latencyMs.max].map(String)),
    String(r.lost), String(r.duplicated), String(r.outOfOrder), String(r.refused ?? 0), r.loadgenCores.toFixed(2),
    r.extra ? `${r.extra.serverBytesPerClient} B server, ${r.extra.redisBytesPerClient} B redis` : '',
  ]);
  return markdown(header, rows);
}

/** Cores of the row's server processes (chatline, Redis, ngIRCd): not the generator, interrupts or other programs. */
function serverCores(r: Result): number {
  const notServer = new Set(['generator', 'interrupts', 'steal', OTHER_PROGRAMS]);
  return Object.entries(r.cores ?? {}).filter(([name]) => !notServer.has(name)).reduce((sum, [, cores]) => sum + cores, 0);
}

/**
 * Where the CPU went in each delivery row's measured window, and what Redis paid per message.
 * "server µs per delivery" is the servers' CPU (all chatline processes and Redis, or ngIRCd)
 * per delivery: unlike the rate, it does not depend on what else shares the two CPUs.
 */
function costTable(results: Result[]): string {
  const reference = new Map(results.filter(isReference).map((r) => [r.scenario, serverCores(r) / r.rate]));
  const header = ['mode', 'scenario', 'messages/s', 'server µs per delivery', 'server CPU ÷ ngIRCd\'s', 'Redis µs per message (above idle)',
    'Redis µs per delivery', 'subscribers cut by Redis', 'peak subscriber output buffer', 'cores by process'];
  const rows = results.filter((r) => r.cores).map((r) => {
    const perDelivery = r.rate ? serverCores(r) / r.rate : 0;
    const ngircd = reference.get(r.scenario);
    return [
      r.mode, r.scenario, String(r.messageRate ?? ''),
      (perDelivery * 1e6).toFixed(2),
      ngircd && !isReference(r) ? `${(perDelivery / ngircd).toFixed(2)}×` : '',
      r.redis ? r.redis.perMessageMicros.toFixed(1) : '',
      r.redis ? r.redis.perDeliveryMicros.toFixed(3) : '',
      r.subscribers ? `${r.subscribers.dropped} of ${r.subscribers.watched}${r.subscribers.resubscribes ? ` (${r.subscribers.resubscribes} resubscribes)` : ''}` : '',
      r.subscribers ? `${Math.round(r.subscribers.peakOutputBytes / 1024)} KiB` : '',
      Object.entries(r.cores!).map(([name, cores]) => `${name} ${cores.toFixed(2)}`).join(', '),
    ];
  });
  return markdown(header, rows);
}

function markdown(header: string[], rows: string[][]): string {
  return [header, header.map(() => '---'), ...rows].map((cells) => `| ${cells.join(' | ')} |`).join('\n');
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
      ? await room('external', endpoints, Number(args.rooms), Number(args.members), Number(args.window), timing,
        args.dialect === 'irc' ? { dialect: irc(), connectConcurrency: 8 } : {})
      : args.scenario === 'connect'
        ? await connectMany('external', endpoints, Number(args.clients), noSample)
        : await dm('external', endpoints, Number(args.pairs), Number(args.window), timing);
    if (args.scenario === 'dm') one.notes.push('pairs are consecutive connections: which workers they are on is not known');
    results = [one];
  } else {
    // The deployments run the compiled build, as the image does; built from this tree now.
    execFileSync('npm', ['run', '--silent', 'build'], { stdio: 'inherit' });
    useCompiledBuild();
    ({ results, reference } = await standardMatrix());
  }
  const machine = `${cpus()[0]?.model ?? 'cpu'} × ${availableParallelism()}, ${Math.round(totalmem() / 2 ** 30)} GiB, node ${process.version}`;
  console.log(`\nchatline bench — ${new Date().toISOString()} — ${machine}\n`);
  console.log(table(results, reference));
  if (results.some((r) => r.cores)) console.log(`\nWhere the CPU went in each measured window (cores: 1.00 is one CPU busy all the time)\n\n${costTable(results)}`);
  for (const r of results) for (const note of r.notes) console.log(`note: ${r.mode} | ${r.scenario}: ${note}`);
  const bad = results.filter((r) => r.lost || r.duplicated || r.outOfOrder);
  for (const r of bad) {
    console.log(`\n!!! DELIVERY ERRORS in ${r.mode} | ${r.scenario}: ${r.lost} lost, ${r.duplicated} duplicated, ${r.outOfOrder} out of order !!!`);
  }
  // Refusals are not delivery errors (the sender was told), but a server that refuses under load is news.
  for (const r of results.filter((result) => result.refused)) {
    console.log(`\n!!! ${r.mode} | ${r.scenario}: the server refused ${r.refused} messages (see the notes) !!!`);
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
