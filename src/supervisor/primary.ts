import cluster, { type Worker } from 'node:cluster';
import type { Config } from '../config.js';
import { type HealthSource, type InstanceReport, startHealthServer } from '../health.js';
import type { Logger } from '../log.js';
import { metrics } from '../metrics.js';
import { serveAddressSlots } from '../net/address-slots.js';
import { InstanceMetrics, type ScrapedWorker } from './instance-metrics.js';
import { isWorkerMessage, type Metrics, type PrimaryMessage, type WorkerStatus } from './ipc.js';

// The primary of a Redis-mode instance: it forks the workers (through throng), answers
// HEALTH_PORT for the whole instance, watches every worker and replaces those that die or hang.
//   - A worker reports its status every second from its event loop; one silent for WATCHDOG_MS
//     is stuck (GC, CPU starvation, SIGSTOP, an endless loop): killed, and replaced.
//   - A worker that exits is replaced, at once if it had served a while, else after a delay
//     that doubles up to MAX_RESTART_DELAY_MS, so a crash at start never becomes a storm.
//   - A worker that reports it cannot start at all (a port taken, Redis' policy refused) stops
//     the instance with that one line: restarting would fail the same way forever.

/** A worker that served this long before exiting is restarted at once. */
const STABLE_MS = 30_000;
const FIRST_RESTART_DELAY_MS = 250;
const MAX_RESTART_DELAY_MS = 10_000;
const WATCHDOG_CHECK_MS = 500;

interface Tracked extends ScrapedWorker {
  readonly worker: Worker;
  readonly pid: number;
  readonly forkedAt: number;
  lastSeen: number;
  status: WorkerStatus | undefined;
  killedAsStuck: boolean;
}

export async function runPrimary(config: Config, log: Logger): Promise<void> {
  const tracked = new Map<number, Tracked>();
  const instanceMetrics = new InstanceMetrics();
  let draining = false;
  let stopping = false;
  let quickExits = 0;

  const report = (): InstanceReport => {
    const now = performance.now();
    return {
      draining,
      expectedWorkers: config.workers,
      workers: [...tracked.values()].map((entry) => ({
        pid: entry.pid,
        ...(entry.status ?? { state: 'starting' as const, backplane: { up: false, state: 'connecting' }, clients: 0 }),
        stuck: now - entry.lastSeen > config.watchdogMs,
        lastSeenMs: Math.round(now - entry.lastSeen),
      })),
    };
  };
  const source: HealthSource = {
    report,
    metrics: () => {
      const states = { serving: 0, starting: 0, stuck: 0 };
      for (const worker of report().workers) states[worker.stuck ? 'stuck' : worker.state === 'serving' ? 'serving' : 'starting']++;
      for (const [state, count] of Object.entries(states)) metrics.workers.set({ state }, count);
      return instanceMetrics.collect([...tracked.values()]);
    },
  };

  // MAX_CONNECTIONS_PER_IP holds for the whole instance: the workers ask here.
  if (config.maxConnectionsPerIp > 0) serveAddressSlots(config.maxConnectionsPerIp, log);

  let health;
  try {
    health = await startHealthServer(config.host, config.healthPort, source);
  } catch (error) {
    log.fatal((error as Error).message);
    process.exit(1);
  }

  const stopInstance = (message: string) => {
    if (stopping) return;
    stopping = true;
    log.fatal(message);
    for (const entry of tracked.values()) entry.worker.process.kill('SIGKILL');
    process.exit(1);
  };

  cluster.on('fork', (worker) => {
    const entry: Tracked = {
      worker, id: worker.id, pid: worker.process.pid!, forkedAt: performance.now(), lastSeen: performance.now(),
      status: undefined, killedAsStuck: false, lastMetrics: undefined,
      ask: (request: number) => {
        if (!worker.isConnected()) return false;
        const message: PrimaryMessage = { chatline: 'metrics?', request };
        worker.send(message, undefined, () => {});
        return true;
      },
    };
    tracked.set(worker.id, entry);
  });

  cluster.on('message', (worker, message: unknown) => {
    const entry = tracked.get(worker.id);
    if (!entry || !isWorkerMessage(message)) return;
    entry.lastSeen = performance.now();
    switch (message.chatline) {
      case 'status':
        entry.status = message.status;
        return;
      case 'metrics':
        instanceMetrics.answered(worker.id, message.request, message.metrics as Metrics);
        return;
      case 'fatal':
        stopInstance(message.message);
    }
  });

  cluster.on('exit', (worker, code, signal) => {
    const entry = tracked.get(worker.id);
    tracked.delete(worker.id);
    void instanceMetrics.retire(entry?.lastMetrics);
    // Its clients were cut with it (those of a worker the watchdog killed are counted there).
    const clients = entry?.status?.clients ?? 0;
    if (clients > 0 && !entry?.killedAsStuck) metrics.connectionsClosed.inc({ reason: 'worker_exit' }, clients);
    if (draining || stopping) {
      if (tracked.size === 0) {
        health.close();
        log.info('every worker stopped; exiting');
        process.exit(0);
      }
      return;
    }
    const served = entry ? performance.now() - entry.forkedAt : 0;
    quickExits = served > STABLE_MS ? 0 : quickExits + 1;
    const delay = quickExits === 0 ? 0 : Math.min(MAX_RESTART_DELAY_MS, FIRST_RESTART_DELAY_MS * 2 ** (quickExits - 1));
    metrics.workerRestarts.inc();
    log.warn({ workerPid: entry?.pid, code, signal, restartInMs: delay }, 'a worker exited; starting another');
    setTimeout(() => {
      if (!draining && !stopping) cluster.fork();
    }, delay).unref();
  });

  const watchdog = setInterval(() => {
    const now = performance.now();
    for (const entry of tracked.values()) {
      if (entry.killedAsStuck || now - entry.lastSeen <= config.watchdogMs) continue;
      entry.killedAsStuck = true;
      const clients = entry.status?.clients ?? 0;
      log.error({ workerPid: entry.pid, silentMs: Math.round(now - entry.lastSeen), clients },
        'a worker did not answer within WATCHDOG_MS; killing it');
      metrics.watchdogKills.inc();
      if (clients > 0) metrics.connectionsClosed.inc({ reason: 'watchdog' }, clients);
      entry.worker.process.kill('SIGKILL');
    }
  }, WATCHDOG_CHECK_MS);
  watchdog.unref();

  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    // throng forwards the signal to every worker; from now on the instance is draining.
    process.on(signal, () => {
      draining = true;
      if (tracked.size === 0) process.exit(0);
    });
  }
}
