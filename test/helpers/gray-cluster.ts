import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Cluster, Redis } from 'ioredis';
import { ChatProcess } from './chat-process.js';
import { checkHistory, checkNoDeafUser, checkSharedState, type HistoryOptions, readSharedState } from './checker.js';
import { FaultProxy } from './fault-proxy.js';
import { RedisCluster } from './redis-cluster.js';
import { RedisSentinel } from './redis-sentinel.js';
import { type ProcessRedis, startRedisProcess } from './redis.js';
import { History, TrackedClient } from './tracked-client.js';

// The smallest real cluster for fault tests: two instances of two workers each, with clients
// that keep a history, over one of the Redis topologies chatline runs on:
//   'single'    one redis-server (DEBUG allowed, so it can be made to stall), optionally behind a
//               fault proxy;
//   'cluster'   a Redis Cluster of 3 primaries and 3 replicas;
//   'sentinel'  a primary, a replica and 3 sentinels.
// check() waits out the settle time and runs every checker.

export interface GrayClusterOptions {
  prefix: string;
  nodeTtlMs: number;
  topology?: 'single' | 'cluster' | 'sentinel';
  /** More environment for both instances. */
  env?: Record<string, string>;
  /** More redis-server arguments (every node). */
  redisArgs?: string[];
  /** Workers reach Redis through a fault proxy (single only). */
  proxy?: boolean;
  workers?: number;
}

/** Where the shared state lives, as the test sees it. */
interface Store {
  /** What chatline is told to use. */
  env: Record<string, string>;
  /** A client that reads the shared state. */
  reader(): Redis | Cluster;
  stop(): Promise<void>;
}

export class GrayCluster {
  readonly history = new History();
  readonly clients: TrackedClient[] = [];
  private probeCount = 0;

  private constructor(
    private readonly store: Store,
    /** The Redis of the 'single' topology. */
    readonly single: ProcessRedis | undefined,
    readonly redisCluster: RedisCluster | undefined,
    readonly sentinel: RedisSentinel | undefined,
    readonly proxy: FaultProxy | undefined,
    readonly instances: ChatProcess[],
    readonly options: GrayClusterOptions,
  ) {}

  /** The one redis-server of the 'single' topology. */
  get redis(): ProcessRedis {
    if (!this.single) throw new Error('this cluster does not run on a single redis-server');
    return this.single;
  }

  static async start(options: GrayClusterOptions): Promise<GrayCluster> {
    const args = options.redisArgs ?? [];
    let single: ProcessRedis | undefined;
    let redisCluster: RedisCluster | undefined;
    let sentinel: RedisSentinel | undefined;
    let proxy: FaultProxy | undefined;
    let store: Store | undefined;
    try {
      switch (options.topology ?? 'single') {
        case 'single': {
          single = await startRedisProcess({ args: ['--enable-debug-command', 'yes', ...args] });
          proxy = options.proxy ? await FaultProxy.start(single.port) : undefined;
          const redis = single;
          store = { env: { REDIS_URL: proxy ? proxy.url : redis.url }, reader: () => redis.client, stop: () => redis.stop() };
          break;
        }
        case 'cluster': {
          const started = await RedisCluster.start({ args });
          redisCluster = started;
          // A fresh client for each reading: one made before a failover may still point at a dead primary.
          store = { env: { REDIS_CLUSTER_NODES: started.seeds.join(',') }, reader: () => started.connect(), stop: () => started.stop() };
          break;
        }
        case 'sentinel': {
          const started = await RedisSentinel.start('chat', { args });
          sentinel = started;
          const reader = started.connect();
          store = {
            env: { REDIS_SENTINELS: started.sentinels.join(','), REDIS_SENTINEL_NAME: 'chat' },
            reader: () => reader,
            stop: () => started.stop(),
          };
          break;
        }
      }
      const instances = await ChatProcess.startPair({
        ...store.env, REDIS_PREFIX: options.prefix, NODE_TTL_MS: String(options.nodeTtlMs), RATE_PER_SEC: '0', ...options.env,
      }, options.workers ?? 2);
      return new GrayCluster(store, single, redisCluster, sentinel, proxy, instances, options);
    } catch (error) {
      await proxy?.stop();
      await store?.stop();
      throw error;
    }
  }

  /** A new client on instance `instance` (round-robin over its workers), connected. */
  async client(instance = 0): Promise<TrackedClient> {
    const client = new TrackedClient(this.clients.length + 1, this.history, () => this.instances[instance % this.instances.length]!.port);
    this.clients.push(client);
    await client.connect();
    return client;
  }

  /** A client logged in as `name` and in `rooms`, asserting each step worked. */
  async member(name: string, instance: number, rooms: string[] = []): Promise<TrackedClient> {
    const client = await this.client(instance);
    for (const command of [`LOGIN ${name}`, ...rooms.map((room) => `JOIN ${room}`)]) {
      const reply = await client.command(command);
      if (reply !== 'OK') throw new Error(`${command} answered ${reply}`);
    }
    return client;
  }

  /**
   * After the faults: waits out the settle time (NODE_TTL_MS, and a second for the last
   * reconcile to finish), then judges the history, the shared state and whether everyone hears.
   */
  async check(settleMs = this.options.nodeTtlMs + 1000, history: HistoryOptions = {}): Promise<string[]> {
    await new Promise((resolve) => setTimeout(resolve, settleMs));
    const violations = checkHistory(this.history, history);
    violations.push(...checkSharedState(await readSharedState(this.store.reader(), this.options.prefix), this.clients));
    const probe = new TrackedClient(-(++this.probeCount), this.history, () => this.instances[0]!.port);
    await probe.connect();
    if ((await probe.command(`LOGIN probe${this.probeCount}`)) !== 'OK') return [...violations, 'the probe could not log in'];
    violations.push(...await checkNoDeafUser(this.clients, probe, this.history));
    probe.destroy();
    this.keepHistory(violations);
    return violations;
  }

  /** With CHATLINE_HISTORY_DIR set, a run that broke an invariant leaves its history (and the servers' errors) there. */
  private keepHistory(violations: string[]): void {
    const dir = process.env.CHATLINE_HISTORY_DIR;
    if (!dir || violations.length === 0) return;
    const serverErrors = this.instances.flatMap((instance) => instance.logs.filter((line) =>
      Number(line.level) >= 30 && !/^connection (opened|closed)$/.test(line.msg)));
    const file = join(dir, `history-${this.options.prefix.replace(/\W/g, '')}-${Date.now()}.json`);
    writeFileSync(file, JSON.stringify({ violations, serverErrors, ...this.history }, null, 1));
    console.log(`history of the failed run: ${file}`);
  }

  /** Pids of instance `instance`'s workers. */
  workerPids(instance: number): number[] {
    return this.instances[instance]!.workerPids;
  }

  async stop(): Promise<void> {
    for (const client of this.clients) client.destroy();
    for (const instance of this.instances) {
      for (const pid of instance.workerPids) {
        try { process.kill(pid, 'SIGCONT'); } catch { /* gone */ }
      }
    }
    await Promise.all(this.instances.map((instance) => instance.stop()));
    await this.proxy?.stop();
    await this.store.stop();
  }
}
