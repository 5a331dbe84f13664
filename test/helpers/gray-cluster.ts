import { ChatProcess } from './chat-process.js';
import { checkHistory, checkNoDeafUser, checkSharedState, type HistoryOptions, readSharedState } from './checker.js';
import { FaultProxy } from './fault-proxy.js';
import { type ProcessRedis, startRedisProcess } from './redis.js';
import { History, TrackedClient } from './tracked-client.js';

// The smallest real cluster for fault tests: one redis-server (DEBUG allowed, so it can be made
// to stall), optionally behind a fault proxy, and two instances of two workers each, with
// clients that keep a history. check() waits out the settle time and runs every checker.

export interface GrayClusterOptions {
  prefix: string;
  nodeTtlMs: number;
  /** More environment for both instances. */
  env?: Record<string, string>;
  /** More redis-server arguments. */
  redisArgs?: string[];
  /** Workers reach Redis through a fault proxy. */
  proxy?: boolean;
  workers?: number;
}

export class GrayCluster {
  readonly history = new History();
  readonly clients: TrackedClient[] = [];
  private probeCount = 0;

  private constructor(
    readonly redis: ProcessRedis,
    readonly proxy: FaultProxy | undefined,
    readonly instances: ChatProcess[],
    readonly options: GrayClusterOptions,
  ) {}

  static async start(options: GrayClusterOptions): Promise<GrayCluster> {
    const redis = await startRedisProcess({ args: ['--enable-debug-command', 'yes', ...(options.redisArgs ?? [])] });
    let proxy: FaultProxy | undefined;
    try {
      proxy = options.proxy ? await FaultProxy.start(redis.port) : undefined;
      const url = proxy ? `redis://127.0.0.1:${proxy.port}` : redis.url;
      const instances = await ChatProcess.startPair({
        REDIS_URL: url, REDIS_PREFIX: options.prefix, NODE_TTL_MS: String(options.nodeTtlMs), RATE_PER_SEC: '0',
        ...options.env,
      }, options.workers ?? 2);
      return new GrayCluster(redis, proxy, instances, options);
    } catch (error) {
      await proxy?.stop();
      await redis.stop();
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
    violations.push(...checkSharedState(await readSharedState(this.redis.client, this.options.prefix), this.clients));
    const probe = new TrackedClient(-(++this.probeCount), this.history, () => this.instances[0]!.port);
    await probe.connect();
    if ((await probe.command(`LOGIN probe${this.probeCount}`)) !== 'OK') return [...violations, 'the probe could not log in'];
    violations.push(...await checkNoDeafUser(this.clients, probe, this.history));
    probe.destroy();
    return violations;
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
    await this.redis.stop();
  }
}
