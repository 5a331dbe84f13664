import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import calculateSlot from 'cluster-key-slot';
import { Cluster, type ClusterOptions } from 'ioredis';
import { freePorts } from './ports.js';
import { makeTempDir, onFreshPorts, RedisNode, removeTempDir, requireRedisServer } from './redis-server.js';
import { waitFor } from './wait.js';

// A real Redis Cluster of spawned redis-server processes: 3 primaries with one replica each
// (other counts on request: the bench runs 1 and 3 primaries without replicas), on free ports
// of 127.0.0.1, each with a free cluster bus port (the default, port + 10000, can collide with
// something listening). Persistence is off and cluster-node-timeout short, so a killed primary
// is replaced within a few seconds.
//
// Roles change (failover, kill), so a node is just a process on a port; who is primary is
// asked of the cluster each time. Every question waits until the cluster has *settled*: every
// live node reports cluster_state:ok and all of them describe the same primaries, replicas
// and failed nodes. A test never acts on one node's stale view.

const run = promisify(execFile);
const HOST = '127.0.0.1';
export const SLOT_COUNT = 16384;

/** The Cluster slot of a key (a {hash tag} decides it when present). */
export function keySlot(key: string): number {
  return calculateSlot(key);
}

export interface RedisClusterOptions {
  /** cluster-node-timeout: how long a node is unreachable before it counts as failing. Default 1000. */
  nodeTimeoutMs?: number;
  /** More redis-server arguments for every node, after the defaults. */
  args?: string[];
  /** How many primaries share the slots. Default 3; 1 and 2 work too (see formByHand). */
  primaries?: number;
  /** Replicas of each primary. Default 1. */
  replicasPerPrimary?: number;
}

export class ClusterNode extends RedisNode {
  /** Node id, from CLUSTER MYID; kept across restarts (nodes.conf). */
  id = '';

  constructor(port: number, readonly busPort: number, args: string[]) {
    super(port, args);
  }

  override async start(): Promise<void> {
    await super.start();
    this.id = await this.admin.cluster('MYID') as string;
  }

  override toString(): string {
    return `${this.address} (${this.id.slice(0, 8)})`;
  }
}

/** What every live node agrees on. */
interface ClusterView {
  /** Primary port → the slot ranges it serves. */
  primaries: Map<number, [number, number][]>;
  /** Replica port → its primary's port. */
  replicaOf: Map<number, number>;
  /** Ports of nodes flagged fail. */
  failed: Set<number>;
}

export class RedisCluster {
  private readonly clients = new Set<Cluster>();

  private constructor(readonly nodes: ClusterNode[], private readonly dir: string) {}

  /**
   * Starts 6 nodes, creates the cluster (3 primaries, 1 replica each) and waits until it has
   * settled; `primaries` and `replicasPerPrimary` change those counts (and the nodes started).
   */
  static start(options: RedisClusterOptions = {}): Promise<RedisCluster> {
    return onFreshPorts(() => RedisCluster.startOnce(options));
  }

  private static async startOnce(options: RedisClusterOptions): Promise<RedisCluster> {
    requireRedisServer();
    const primaries = options.primaries ?? 3;
    const replicasPerPrimary = options.replicasPerPrimary ?? 1;
    if (!(primaries >= 1) || !(replicasPerPrimary >= 0)) {
      throw new Error(`no cluster of ${primaries} primaries with ${replicasPerPrimary} replicas each`);
    }
    const count = primaries * (1 + replicasPerPrimary);
    const dir = makeTempDir('chatline-cluster-');
    const ports = await freePorts(2 * count);
    const nodes = Array.from({ length: count }, (_, i) => {
      const port = ports[i]!;
      const busPort = ports[i + count]!;
      return new ClusterNode(port, busPort, [
        '--port', String(port), '--bind', HOST, '--daemonize', 'no',
        '--save', '', '--appendonly', 'no', '--dir', dir, '--dbfilename', `dump-${port}.rdb`,
        '--cluster-enabled', 'yes', '--cluster-port', String(busPort),
        '--cluster-config-file', join(dir, `nodes-${port}.conf`),
        '--cluster-node-timeout', String(options.nodeTimeoutMs ?? 1000),
        // A replica may always take over, however long since it heard from its primary.
        '--cluster-replica-validity-factor', '0',
        // A replica's full sync starts at once, not after the default 5 s wait for more replicas.
        '--repl-diskless-sync-delay', '0',
        // A node learns its own address from its peers; a lone primary has none, and would give
        // clients "" for its slots in CLUSTER SLOTS.
        ...(primaries < 3 ? ['--cluster-announce-ip', HOST] : []),
        ...(options.args ?? []),
      ]);
    });
    const cluster = new RedisCluster(nodes, dir);
    try {
      await Promise.all(nodes.map((node) => node.start()));
      if (primaries >= 3) {
        await run('redis-cli', ['--cluster', 'create', ...nodes.map((node) => node.address), '--cluster-replicas', String(replicasPerPrimary),
          '--cluster-yes'], { timeout: 30_000 })
          .catch((error: Error & { stdout?: string; stderr?: string }) => {
            throw new Error(`redis-cli --cluster create failed: ${error.message}\n${error.stdout ?? ''}${error.stderr ?? ''}`);
          });
      } else {
        await formByHand(nodes, primaries);
      }
      await cluster.settled((view) => view.primaries.size === primaries && view.replicaOf.size === primaries * replicasPerPrimary,
        'the new cluster', 30_000);
    } catch (error) {
      await cluster.stop();
      throw error;
    }
    return cluster;
  }

  /** host:port of every node, for REDIS_CLUSTER_NODES (join with ','). */
  get seeds(): string[] {
    return this.nodes.map((node) => node.address);
  }

  async primaries(): Promise<ClusterNode[]> {
    const view = await this.settled();
    return [...view.primaries.keys()].map((port) => this.node(port));
  }

  async replicas(): Promise<ClusterNode[]> {
    const view = await this.settled();
    return [...view.replicaOf.keys()].map((port) => this.node(port));
  }

  async replicasOf(primary: ClusterNode): Promise<ClusterNode[]> {
    const view = await this.settled();
    return [...view.replicaOf].filter(([, of]) => of === primary.port).map(([port]) => this.node(port));
  }

  async primaryForSlot(slot: number): Promise<ClusterNode> {
    return this.node(primaryPortForSlot(await this.settled(), slot));
  }

  async primaryForKey(key: string): Promise<ClusterNode> {
    return this.primaryForSlot(keySlot(key));
  }

  /**
   * `count` names (default 2) whose hash tags `{name}` sit on different primaries, from
   * candidate(0), candidate(1), ... (default user0, user1, ...). For chatline, a user or room
   * name: all its keys carry that tag.
   */
  async namesOnDifferentPrimaries(count = 2, candidate = (i: number) => `user${i}`): Promise<string[]> {
    const view = await this.settled();
    if (count > view.primaries.size) throw new Error(`only ${view.primaries.size} primaries for ${count} names`);
    const found = new Map<number, string>();
    for (let i = 0; found.size < count; i++) {
      if (i > 100_000) throw new Error(`no ${count} candidates on different primaries`);
      const name = candidate(i);
      const primary = primaryPortForSlot(view, keySlot(`{${name}}`));
      if (!found.has(primary)) found.set(primary, name);
    }
    return [...found.values()];
  }

  /**
   * A graceful failover: CLUSTER FAILOVER on a replica of `primary`. Waits until that replica
   * is primary everywhere, the old primary is its replica and in sync again (so a failover back
   * works), and the cluster is ok. Returns the new primary.
   */
  async failover(primary: ClusterNode, timeoutMs = 20_000): Promise<ClusterNode> {
    const [replica] = await this.replicasOf(primary);
    if (!replica) throw new Error(`${primary} is not a primary with a replica`);
    await replica.admin.cluster('FAILOVER');
    await this.settled((view) => view.primaries.has(replica.port) && view.replicaOf.get(primary.port) === replica.port,
      `${replica} to take over from ${primary}`, timeoutMs);
    return replica;
  }

  /**
   * SIGKILLs a node. A primary's replica takes over: waits until it is primary everywhere and
   * the cluster is ok again, and returns it. For a replica, waits until the cluster flags it failed.
   */
  async kill(node: ClusterNode, timeoutMs = 20_000): Promise<ClusterNode | undefined> {
    const before = await this.settled();
    const replicas = [...before.replicaOf].filter(([, of]) => of === node.port).map(([port]) => port);
    await node.kill();
    if (!before.primaries.has(node.port)) {
      await this.settled((view) => view.failed.has(node.port), `${node} to be flagged failed`, timeoutMs);
      return undefined;
    }
    const view = await this.settled((view) => view.failed.has(node.port) && replicas.some((port) => view.primaries.has(port)),
      `a replica of ${node} to take over`, timeoutMs);
    return this.node(replicas.find((port) => view.primaries.has(port))!);
  }

  /** Starts a killed node again with its cluster config: it rejoins (a former primary as a replica) and syncs. */
  async restart(node: ClusterNode, timeoutMs = 20_000): Promise<void> {
    if (node.alive) throw new Error(`${node} is running`);
    await node.start();
    await this.settled((view) => !view.failed.has(node.port), `${node} to rejoin`, timeoutMs);
  }

  /** An ioredis Cluster client on the seeds, speaking RESP2 like chatline; disconnected by stop(). */
  connect(options: ClusterOptions = {}): Cluster {
    const client = new Cluster(this.nodes.map((node) => ({ host: HOST, port: node.port })), {
      ...options,
      redisOptions: { protocol: 2, ...options.redisOptions },
    });
    client.on('error', () => {});
    this.clients.add(client);
    return client;
  }

  async stop(): Promise<void> {
    for (const client of this.clients) client.disconnect();
    await Promise.all(this.nodes.map((node) => node.stop()));
    removeTempDir(this.dir);
  }

  private node(port: number): ClusterNode {
    const node = this.nodes.find((candidate) => candidate.port === port);
    if (!node) throw new Error(`no node of this cluster on port ${port}`);
    return node;
  }

  /**
   * Waits until every live node reports cluster_state:ok, they all describe the same cluster,
   * every live replica's link to its primary is up, and `until` holds of that cluster.
   */
  private async settled(until: (view: ClusterView) => boolean = () => true, what = 'the cluster to settle', timeoutMs = 15_000): Promise<ClusterView> {
    let last = 'no answer yet';
    try {
      return await waitFor(what, async () => {
        const view = await this.agreedView();
        if (typeof view === 'string') {
          last = view;
          return undefined;
        }
        last = describe(view);
        return until(view) ? view : undefined;
      }, timeoutMs);
    } catch (error) {
      throw new Error(`${(error as Error).message}; last seen: ${last}`);
    }
  }

  /** The view all live nodes share, or why there is none. */
  private async agreedView(): Promise<ClusterView | string> {
    const live = this.nodes.filter((node) => node.alive);
    const views: string[] = [];
    let view: ClusterView | undefined;
    for (const node of live) {
      try {
        const info = await node.admin.cluster('INFO') as string;
        if (!info.includes('cluster_state:ok')) return `${node} reports ${/cluster_state:\w+/.exec(info)?.[0]}`;
        view = parseClusterNodes(await node.admin.cluster('NODES') as string);
        if (view === undefined) return `${node} sees nodes still joining or suspected (pfail)`;
        views.push(describe(view));
        if (view.replicaOf.has(node.port) && !(await node.admin.info('replication')).includes('master_link_status:up')) {
          return `${node}'s replication link is not up`;
        }
      } catch (error) {
        return `${node} did not answer: ${(error as Error).message}`;
      }
    }
    if (new Set(views).size !== 1 || view === undefined) return `nodes disagree: ${views.join(' | ')}`;
    const livePorts = new Set(live.map((node) => node.port));
    const unflaggedDead = this.nodes.find((node) => !livePorts.has(node.port) && !view.failed.has(node.port));
    if (unflaggedDead) return `${unflaggedDead} is dead but not flagged failed`;
    return view;
  }
}

/**
 * What redis-cli --cluster create does, for fewer than the 3 primaries it insists on: the first
 * `primaries` nodes split the slots evenly (each with its own config epoch), every node meets the
 * first, and the rest replicate the primaries in turn once they know them.
 */
async function formByHand(nodes: ClusterNode[], primaries: number): Promise<void> {
  for (let i = 0; i < primaries; i++) {
    const first = Math.floor((i * SLOT_COUNT) / primaries);
    const last = Math.floor(((i + 1) * SLOT_COUNT) / primaries) - 1;
    await nodes[i]!.admin.cluster('ADDSLOTSRANGE', first, last);
    await nodes[i]!.admin.cluster('SET-CONFIG-EPOCH', i + 1);
  }
  for (const node of nodes.slice(1)) await node.admin.cluster('MEET', HOST, nodes[0]!.port, nodes[0]!.busPort);
  for (const [i, replica] of nodes.slice(primaries).entries()) {
    const primary = nodes[i % primaries]!;
    await waitFor(`${replica} to learn of ${primary}`, async () => (await replica.admin.cluster('NODES') as string).includes(primary.id), 10_000);
    await replica.admin.cluster('REPLICATE', primary.id);
  }
}

/** The cluster as one node's CLUSTER NODES shows it; undefined while anything is in flux. */
function parseClusterNodes(text: string): ClusterView | undefined {
  const view: ClusterView = { primaries: new Map(), replicaOf: new Map(), failed: new Set() };
  const portOfId = new Map<string, number>();
  const primaryIdOf = new Map<number, string>();
  for (const line of text.trim().split('\n')) {
    // <id> <ip:port@cport[,hostname]> <flags> <primary id or -> <ping-sent> <pong-recv> <epoch> <link-state> <slot>...
    const [id, address, flagList, primaryId, , , , , ...slots] = line.trim().split(' ');
    const flags = new Set(flagList!.split(','));
    if (flags.has('handshake') || flags.has('noaddr') || flags.has('fail?')) return undefined;
    const port = Number(/:(\d+)@/.exec(address!)?.[1]);
    portOfId.set(id!, port);
    if (flags.has('fail')) {
      view.failed.add(port);
    } else if (flags.has('master')) {
      if (slots.length > 0) view.primaries.set(port, slots.filter((slot) => !slot.startsWith('[')).map(slotRange));
    } else if (flags.has('slave')) {
      primaryIdOf.set(port, primaryId!);
    }
  }
  for (const [port, primaryId] of primaryIdOf) view.replicaOf.set(port, portOfId.get(primaryId) ?? -1);
  return view;
}

function slotRange(slots: string): [number, number] {
  const [first, last = first] = slots.split('-').map(Number);
  return [first!, last!];
}

function primaryPortForSlot(view: ClusterView, slot: number): number {
  for (const [port, ranges] of view.primaries) {
    if (ranges.some(([first, last]) => slot >= first && slot <= last)) return port;
  }
  throw new Error(`no primary serves slot ${slot}`);
}

function describe(view: ClusterView): string {
  const primaries = [...view.primaries].sort(([a], [b]) => a - b)
    .map(([port, ranges]) => `${port}[${ranges.map(([first, last]) => `${first}-${last}`).join(',')}]`);
  const replicas = [...view.replicaOf].sort(([a], [b]) => a - b).map(([port, of]) => `${port}->${of}`);
  return `primaries ${primaries.join(' ')}; replicas ${replicas.join(' ')}; failed ${[...view.failed].sort().join(' ') || 'none'}`;
}
