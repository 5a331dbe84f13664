import { readFileSync } from 'node:fs';
import type { Redis } from 'ioredis';
import { sample, scrape } from '../test/helpers/metrics.js';

// What the servers spent while the bench measured: CPU per process (where the time goes on a
// machine that the generator, Redis and chatline share), Redis' own CPU (what one message
// costs the one process every instance shares), and whether Redis cut a subscriber.

/** The processes a row runs on, by a label for the table: "worker 1", "redis", "ngIRCd". */
export type Processes = () => Record<string, number>;

const TICKS_PER_SECOND = 100; // getconf CLK_TCK on Linux

/** User + system CPU seconds of a process and all its threads, from /proc (10 ms resolution). */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name (which may hold spaces), from field 3 on: utime is 14, stime 15.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND;
}

/**
 * CPU seconds the whole machine spent (all CPUs) busy in processes (user, nice, system) and in
 * interrupts (irq, softirq: on loopback, mostly delivering the bench's own packets), and stolen
 * by the hypervisor, from /proc/stat.
 */
export function machineSeconds(): { processes: number; interrupts: number; steal: number } {
  const ticks = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!.trim().split(/\s+/).slice(1).map(Number);
  const [user, nice, system, , , irq, softirq, steal] = ticks as [number, number, number, number, number, number, number, number];
  return { processes: (user + nice + system) / TICKS_PER_SECOND, interrupts: (irq + softirq) / TICKS_PER_SECOND, steal: steal / TICKS_PER_SECOND };
}

/** The label of the cores no process of the row used: other programs on the machine. */
export const OTHER_PROGRAMS = 'other programs';

/**
 * Starts counting; the returned function gives each process's cores over the time since, then
 * "interrupts" (irq and softirq time, which /proc charges to no process), "steal" where the
 * hypervisor took a CPU away, and "other programs": the machine's process time less these
 * processes and `ownCores` (the generator, counted by the caller).
 */
export function processCpu(processes: Record<string, number>): (ownCores: number) => Record<string, number> {
  const started = performance.now();
  const machine = machineSeconds();
  const before = Object.fromEntries(Object.entries(processes).map(([name, pid]) => [name, cpuSeconds(pid)]));
  const round = (cores: number) => Math.round(Math.max(0, cores) * 100) / 100;
  return (ownCores) => {
    const seconds = (performance.now() - started) / 1000;
    const cores = Object.fromEntries(Object.entries(processes).map(([name, pid]) => [name, (cpuSeconds(pid) - before[name]!) / seconds]));
    const now = machineSeconds();
    const others = (now.processes - machine.processes) / seconds - ownCores - Object.values(cores).reduce((a, b) => a + b, 0);
    return {
      ...Object.fromEntries(Object.entries(cores).map(([name, value]) => [name, round(value)])),
      interrupts: round((now.interrupts - machine.interrupts) / seconds),
      ...(now.steal > machine.steal ? { steal: round((now.steal - machine.steal) / seconds) } : {}),
      [OTHER_PROGRAMS]: round(others),
    };
  };
}

/**
 * Waits (up to `maxMs`) until these processes together use less than `idleCores` over a quarter
 * second: what one row left behind (5000 clients logging out, an IRC server telling every member
 * about each QUIT) is not measured in the next. Resolves with how long it waited, or undefined
 * if they never went idle.
 */
export async function settle(processes: Record<string, number>, maxMs = 30_000, idleCores = 0.05): Promise<number | undefined> {
  const started = performance.now();
  while (performance.now() - started < maxMs) {
    const before = Object.values(processes).reduce((sum, pid) => sum + cpuSeconds(pid), 0);
    await new Promise((resolve) => setTimeout(resolve, 250));
    const after = Object.values(processes).reduce((sum, pid) => sum + cpuSeconds(pid), 0);
    if ((after - before) / 0.25 < idleCores) return performance.now() - started;
  }
  return undefined;
}

/**
 * Redis' CPU time from INFO cpu: used_cpu_user + used_cpu_sys, in microseconds (getrusage of
 * the whole server, all threads; /proc's 10 ms ticks are too coarse for a few seconds of a
 * process that may use a tenth of a core).
 */
export async function redisCpuMicros(client: Redis): Promise<number> {
  const info = await client.info('cpu');
  const field = (name: string) => Number(new RegExp(`^${name}:([\\d.]+)`, 'm').exec(info)![1]);
  return Math.round((field('used_cpu_user') + field('used_cpu_sys')) * 1e6);
}

/** The same, summed over several servers (a Cluster's nodes). */
export async function redisCpuMicrosOf(clients: Redis[]): Promise<number> {
  return (await Promise.all(clients.map(redisCpuMicros))).reduce((sum, micros) => sum + micros, 0);
}

interface RedisClientInfo {
  id: string;
  name: string;
  subscriptions: number;
  outputBytes: number;
}

async function clientList(client: Redis): Promise<RedisClientInfo[]> {
  const text = await client.client('LIST') as string;
  return text.trim().split('\n').map((line) => {
    const fields = new Map(line.split(' ').map((pair) => {
      const equals = pair.indexOf('=');
      return [pair.slice(0, equals), pair.slice(equals + 1)] as const;
    }));
    const count = (name: string) => Number(fields.get(name) ?? 0);
    return {
      id: fields.get('id') ?? '', name: fields.get('name') ?? '',
      subscriptions: count('sub') + count('psub') + count('ssub'), outputBytes: count('omem'),
    };
  });
}

export interface SubscriberWatch {
  /** Subscriber connections open at the start that were gone at the end. */
  dropped: number;
  /** Subscriber connections at the start. */
  watched: number;
  /** The largest output buffer a subscriber had in Redis at any sample (every 250 ms). */
  peakOutputBytes: number;
  /** chatline_subscriber_resubscribes_total's increase, where the instance exports it. */
  resubscribes: number | undefined;
}

/** CLIENT LIST of several servers, with ids made unique across them. */
async function clientListOf(clients: Redis[]): Promise<RedisClientInfo[]> {
  const lists = await Promise.all(clients.map(clientList));
  return lists.flatMap((list, i) => list.map((c) => ({ ...c, id: `${i}:${c.id}` })));
}

/**
 * Watches the connections that are subscribed to something, from Redis' side (on every node of
 * a Cluster, where the sharded subscribers are spread over the primaries): CLIENT LIST at the
 * start and at the end of a row, by client id. A connection Redis cut (output buffer limit,
 * timeout, CLIENT KILL) is gone at the end even if the worker reconnected at once, since a new
 * connection gets a new id; a count of connected_clients would miss that, and the instance's own
 * resubscribe counter (where it has one) counts only reconnects that completed. That counter is
 * read too, as a cross-check. Samples CLIENT LIST every 250 ms for the subscribers' output buffers.
 */
export async function watchSubscribers(clients: Redis[], healthPort: number | undefined): Promise<() => Promise<SubscriberWatch>> {
  const resubscribes = async () => {
    if (healthPort === undefined) return undefined;
    try {
      return sample(await scrape(healthPort), 'chatline_subscriber_resubscribes_total');
    } catch {
      return undefined; // an instance without /metrics
    }
  };
  const resubscribedBefore = await resubscribes();
  const start = (await clientListOf(clients)).filter((c) => c.subscriptions > 0);
  let peakOutputBytes = Math.max(0, ...start.map((c) => c.outputBytes));
  let sampling = Promise.resolve();
  const timer = setInterval(() => {
    sampling = clientListOf(clients).then((listed) => {
      for (const c of listed) if (c.subscriptions > 0) peakOutputBytes = Math.max(peakOutputBytes, c.outputBytes);
    }, () => {});
  }, 250);
  return async () => {
    clearInterval(timer);
    await sampling;
    const open = new Set((await clientListOf(clients)).map((c) => c.id));
    const resubscribedAfter = await resubscribes();
    return {
      dropped: start.filter((c) => !open.has(c.id)).length,
      watched: start.length,
      peakOutputBytes,
      resubscribes: resubscribedBefore === undefined || resubscribedAfter === undefined ? undefined : resubscribedAfter - resubscribedBefore,
    };
  };
}
