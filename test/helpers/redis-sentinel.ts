import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Redis, type RedisOptions } from 'ioredis';
import { freePorts } from './ports.js';
import { makeTempDir, onFreshPorts, RedisNode, removeTempDir, requireRedisServer } from './redis-server.js';
import { waitFor } from './wait.js';

// A real Sentinel set of spawned redis-server processes: a primary, a replica, and 3 sentinels
// (quorum 2) watching them under a name the caller gives, all on free ports of 127.0.0.1.
// down-after-milliseconds is 1 s and failover-timeout 3 s, so a killed primary is replaced
// within a few seconds. Each sentinel has its own config file in a temp dir, which it rewrites.
//
// Which node is primary changes, so it is asked of the sentinels each time. Every change waits
// until all three sentinels agree and the new primary accepts a write.

const HOST = '127.0.0.1';
const QUORUM = 2;

export interface RedisSentinelOptions {
  /** down-after-milliseconds: silence before a sentinel thinks the primary down. Default 1000. */
  downAfterMs?: number;
  /** failover-timeout; also how long before the sentinels retry a failed failover (twice this). Default 3000. */
  failoverTimeoutMs?: number;
  /** requirepass (and masterauth) on primary and replica; the sentinels and connect() use it. */
  password?: string;
  /** More redis-server arguments for the primary and the replica, after the defaults. */
  args?: string[];
  /**
   * Sentinel's internal periods, set on each sentinel with SENTINEL DEBUG (Redis 7.0+), e.g.
   * FAST_SENTINEL_TIMING. None by default: Redis' own timing, which is what production sees.
   */
  sentinelDebug?: Record<string, number>;
}

/**
 * INFO every 1 s (not 10 s) and hellos every 0.5 s (not 2 s): after a failover the sentinels
 * demote the old primary within about 3 s instead of 8–11 s, and find each other sooner. Use
 * with care: with these, 2 runs of the self-test in 5 saw the sentinels fail over a second time
 * on their own (a machine busy with other tests; cause not pinned down). It also narrows the
 * window in which a master that reports itself a replica is taken for down to 3 s.
 */
export const FAST_SENTINEL_TIMING: Record<string, number> = { 'info-period': 1000, 'publish-period': 500 };

export class RedisSentinel {
  private readonly clients = new Set<Redis>();
  /** Each data node's arguments without --replicaof. */
  private readonly baseArgs = new Map<RedisNode, string[]>();

  private constructor(
    readonly name: string,
    /** The two data nodes: the first starts as primary, the second as its replica. */
    readonly dataNodes: [RedisNode, RedisNode],
    readonly sentinelNodes: RedisNode[],
    private readonly password: string | undefined,
    private readonly dir: string,
  ) {}

  /** Starts primary and replica, then 3 sentinels, and waits until all sentinels see both and each other. */
  static start(name: string, options: RedisSentinelOptions = {}): Promise<RedisSentinel> {
    return onFreshPorts(() => RedisSentinel.startOnce(name, options));
  }

  private static async startOnce(name: string, options: RedisSentinelOptions): Promise<RedisSentinel> {
    requireRedisServer();
    const dir = makeTempDir('chatline-sentinel-');
    const [primaryPort, replicaPort, ...sentinelPorts] = await freePorts(5) as [number, number, ...number[]];
    const { password } = options;
    const auth = password === undefined ? {} : { password };
    const dataArgs = (port: number) => [
      '--port', String(port), '--bind', HOST, '--daemonize', 'no',
      '--save', '', '--appendonly', 'no', '--dir', dir, '--dbfilename', `dump-${port}.rdb`,
      // A replica's full sync starts at once, not after the default 5 s wait for more replicas.
      '--repl-diskless-sync-delay', '0',
      ...(password === undefined ? [] : ['--requirepass', password, '--masterauth', password]),
      ...(options.args ?? []),
    ];
    const primary = new RedisNode(primaryPort, dataArgs(primaryPort), auth);
    const replica = new RedisNode(replicaPort, [...dataArgs(replicaPort), '--replicaof', HOST, String(primaryPort)], auth);
    const sentinelNodes = sentinelPorts.map((port) => new RedisNode(port, [join(dir, `sentinel-${port}.conf`), '--sentinel']));
    const sentinel = new RedisSentinel(name, [primary, replica], sentinelNodes, password, dir);
    sentinel.baseArgs.set(primary, dataArgs(primaryPort)).set(replica, dataArgs(replicaPort));
    try {
      await primary.start();
      await replica.start();
      // Sentinels find replicas in the primary's INFO, which they read every 10 s after the first:
      // the replica must be attached before they look.
      await sentinel.replicaInSync(replica, primary);
      await Promise.all(sentinelNodes.map(async (node) => {
        await writeFile(node.args[0]!, sentinelConfig(node.port, dir, name, primaryPort, options));
        await node.start();
        const debug = Object.entries(options.sentinelDebug ?? {}).flat().map(String);
        if (debug.length > 0) await node.admin.call('SENTINEL', 'DEBUG', ...debug);
      }));
      await sentinel.sentinelsSee(primary, replica, 'the sentinels to see the primary, the replica and each other', 20_000);
    } catch (error) {
      await sentinel.stop();
      throw error;
    }
    return sentinel;
  }

  /** host:port of each sentinel, for REDIS_SENTINELS (join with ','). */
  get sentinels(): string[] {
    return this.sentinelNodes.map((node) => node.address);
  }

  /** The primary, as the first sentinel that answers names it. */
  async currentPrimary(): Promise<RedisNode> {
    for (const sentinel of this.sentinelNodes) {
      const port = await this.primaryPortAccordingTo(sentinel).catch(() => undefined);
      if (port !== undefined) return this.dataNode(port);
    }
    throw new Error(`no sentinel answers for ${this.name}`);
  }

  /**
   * SENTINEL FAILOVER: the replica becomes primary. Returns it once every sentinel names it and
   * it accepts a write. The old primary is then still a primary, taking writes from whoever is
   * connected to it, until the sentinels turn it into a replica: only after 4 hello periods and
   * an INFO, 8–11 s with Redis' own timing (about 3 s with FAST_SENTINEL_TIMING).
   * waitUntilReplica(old) waits for that. A failover waits for it first when the previous one
   * has not finished so. Like killPrimary, it does not wait for the replica to catch up:
   * `WAIT 1 <ms>` first keeps recent writes.
   */
  async failover(timeoutMs = 30_000): Promise<RedisNode> {
    const old = await this.currentPrimary();
    const next = this.other(old);
    if (!next.alive) throw new Error(`${next}, the only replica, is down: restart() it first`);
    const deadline = Date.now() + timeoutMs;
    await this.waitUntilReplica(next, timeoutMs);
    // A sentinel refuses while its view of the replica is not good enough yet (NOGOODSLAVE)
    // or a failover is still finishing (INPROG): ask the same one again. Asking another could
    // start a second failover on a view the first has not reached yet.
    const sentinel = this.sentinelNodes.find((node) => node.alive)!;
    let refusal = '';
    await waitFor(`SENTINEL FAILOVER ${this.name} to be accepted by ${sentinel}`, async () => {
      const reply = await sentinel.admin.call('SENTINEL', 'FAILOVER', this.name).catch((error: Error) => error.message);
      refusal = String(reply);
      return reply === 'OK';
    }, deadline - Date.now()).catch((error: Error) => {
      throw new Error(`${error.message}; last refusal: ${refusal}`);
    });
    await this.promoted(next, deadline - Date.now());
    return next;
  }

  /** Waits until `node` replicates the current primary, in sync, and every sentinel sees it so. */
  async waitUntilReplica(node: RedisNode, timeoutMs = 20_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    const primary = await this.currentPrimary();
    if (primary === node) {
      await waitFor(`the sentinels to name another primary than ${node}`, async () => (await this.currentPrimary()) !== node, timeoutMs);
      return this.waitUntilReplica(node, deadline - Date.now());
    }
    await this.replicaInSync(node, primary, deadline - Date.now());
    await this.sentinelsSee(primary, node, `the sentinels to see ${node} as a replica of ${primary}`, deadline - Date.now());
  }

  /**
   * SIGKILLs the primary and waits until the sentinels have promoted the replica; returns it.
   * Waits first, like failover(), until the replica is one in sync (not an old primary the
   * sentinels have yet to demote). Writes the replica had not received are lost, as in a real
   * crash: a test that needs them kept sends `WAIT 1 <ms>` first.
   */
  async killPrimary(timeoutMs = 30_000): Promise<RedisNode> {
    const deadline = Date.now() + timeoutMs;
    const old = await this.currentPrimary();
    const next = this.other(old);
    if (!next.alive) throw new Error(`${next}, the only replica, is down: nothing to promote`);
    await this.waitUntilReplica(next, timeoutMs);
    await old.kill();
    await this.promoted(next, deadline - Date.now());
    return next;
  }

  /** Starts a killed data node again as a replica of the current primary, as an operator would. */
  async restart(node: RedisNode, timeoutMs = 20_000): Promise<void> {
    if (node.alive) throw new Error(`${node} is running`);
    const primary = await this.currentPrimary();
    node.args = [...this.baseArgs.get(node)!, '--replicaof', HOST, String(primary.port)];
    await node.start();
    await this.waitUntilReplica(node, timeoutMs);
  }

  /** An ioredis client that finds the primary through the sentinels (RESP2, like chatline); closed by stop(). */
  connect(options: RedisOptions = {}): Redis {
    const client = new Redis({
      sentinels: this.sentinelNodes.map((node) => ({ host: HOST, port: node.port })),
      name: this.name,
      protocol: 2,
      ...(this.password === undefined ? {} : { password: this.password }),
      ...options,
    });
    client.on('error', () => {});
    this.clients.add(client);
    return client;
  }

  async stop(): Promise<void> {
    for (const client of this.clients) client.disconnect();
    await Promise.all([...this.sentinelNodes, ...this.dataNodes].map((node) => node.stop()));
    removeTempDir(this.dir);
  }

  private dataNode(port: number): RedisNode {
    const node = this.dataNodes.find((candidate) => candidate.port === port);
    if (!node) throw new Error(`the sentinels name ${HOST}:${port}, not a node of this set`);
    return node;
  }

  private other(node: RedisNode): RedisNode {
    return this.dataNodes.find((candidate) => candidate !== node)!;
  }

  private async primaryPortAccordingTo(sentinel: RedisNode): Promise<number> {
    const [, port] = await sentinel.admin.call('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', this.name) as [string, string];
    return Number(port);
  }

  /** Waits until every live sentinel names `primary`, and it says it is master and takes a write. */
  private async promoted(primary: RedisNode, timeoutMs: number): Promise<void> {
    let last = 'no answer yet';
    await waitFor(`${primary} to be promoted`, async () => {
      const named = await Promise.all(this.sentinelNodes.filter((node) => node.alive)
        .map((sentinel) => this.primaryPortAccordingTo(sentinel).catch(() => -1)));
      last = `sentinels name ${named.join(', ')}`;
      if (!named.every((port) => port === primary.port)) return false;
      const probe = `chatline-test:sentinel-probe:${process.pid}`;
      const wrote = await primary.admin.set(probe, '1', 'PX', 1000).catch((error: Error) => error.message);
      last = `${primary} answers SET with ${wrote}`;
      return wrote === 'OK';
    }, timeoutMs).catch((error: Error) => {
      throw new Error(`${error.message}; last seen: ${last}\n${this.sentinelEvents()}`);
    });
  }

  /** The last events each sentinel logged (+sdown, +failover-state-..., -failover-abort-...), for errors. */
  private sentinelEvents(): string {
    return this.sentinelNodes.map((node) => {
      const events = (node.server?.output() ?? '').split('\n').filter((line) => /[#*] [+-]/.test(line)).slice(-12);
      return `sentinel ${node}:\n  ${events.join('\n  ')}`;
    }).join('\n');
  }

  private async replicaInSync(replica: RedisNode, primary: RedisNode, timeoutMs = 15_000): Promise<void> {
    await waitFor(`${replica} to replicate ${primary}`, async () => {
      const info = await replica.admin.info('replication').catch(() => '');
      return info.includes('role:slave') && info.includes(`master_port:${primary.port}`) && info.includes('master_link_status:up');
    }, timeoutMs);
  }

  /** Waits until every live sentinel sees `primary` up with `replica` up, and the other two sentinels. */
  private async sentinelsSee(primary: RedisNode, replica: RedisNode, what: string, timeoutMs: number): Promise<void> {
    let last = 'no answer yet';
    await waitFor(what, async () => {
      for (const sentinel of this.sentinelNodes.filter((node) => node.alive)) {
        try {
          const master = fields(await sentinel.admin.call('SENTINEL', 'MASTER', this.name) as string[]);
          const replicas = (await sentinel.admin.call('SENTINEL', 'REPLICAS', this.name) as string[][]).map(fields);
          const seen = replicas.find((entry) => Number(entry.port) === replica.port);
          last = `${sentinel}: master ${master.port} ${master.flags}, ${master['num-other-sentinels']} other sentinels, `
            + `replica ${seen ? `${seen.flags} link ${seen['master-link-status']}` : 'unknown'}`;
          if (Number(master.port) !== primary.port || master.flags !== 'master') return false;
          if (Number(master['num-other-sentinels']) !== this.sentinelNodes.length - 1) return false;
          if (seen?.flags !== 'slave') return false;
        } catch (error) {
          last = `${sentinel} did not answer: ${(error as Error).message}`;
          return false;
        }
      }
      return true;
    }, timeoutMs).catch((error: Error) => {
      throw new Error(`${error.message}; last seen: ${last}`);
    });
  }
}

function sentinelConfig(port: number, dir: string, name: string, primaryPort: number, options: RedisSentinelOptions): string {
  return [
    `port ${port}`,
    `bind ${HOST}`,
    'daemonize no',
    `dir ${dir}`,
    `sentinel monitor ${name} ${HOST} ${primaryPort} ${QUORUM}`,
    `sentinel down-after-milliseconds ${name} ${options.downAfterMs ?? 1000}`,
    `sentinel failover-timeout ${name} ${options.failoverTimeoutMs ?? 3000}`,
    `sentinel parallel-syncs ${name} 1`,
    ...(options.password === undefined ? [] : [`sentinel auth-pass ${name} ${options.password}`]),
    '',
  ].join('\n');
}

/** A sentinel's flat [name, value, name, value, ...] reply as an object. */
function fields(flat: string[]): Record<string, string> {
  const record: Record<string, string> = {};
  for (let i = 0; i + 1 < flat.length; i += 2) record[flat[i]!] = flat[i + 1]!;
  return record;
}
