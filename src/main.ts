import cluster from 'node:cluster';
import throng from 'throng';
import { ConfigError, describeRedis, loadConfig, type Config } from './config.js';
import { createLogger } from './log.js';
import { runChatNode } from './node.js';

// Entry point. Without REDIS_URL: one process, in-memory state. With it: WORKERS processes
// (node:cluster through throng) sharing one TCP port here and one state in Redis.

function readConfig(): Config {
  try {
    return loadConfig();
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    console.error(`chatline: bad configuration: ${error.message}`);
    process.exit(1);
  }
}

const config = readConfig();
const log = createLogger(config.logLevel);

async function failed(error: unknown): Promise<never> {
  log.fatal({ err: error }, 'could not start');
  process.exit(1);
}

if (!config.redis) {
  log.info({ mode: 'embedded', port: config.port },
    'chatline in embedded mode: one process, in-memory state. To scale out, start it with '
    + 'REDIS_URL=redis://host:6379 (and WORKERS=n); every such instance on one Redis is one chat service.');
  runChatNode(config, log).catch(failed);
} else {
  const redis = config.redis;
  // Set before the first fork; it overrides NODE_CLUSTER_SCHED_POLICY. Round-robin waits for
  // each worker to take a connection before handing it the next, so it accepts more slowly.
  cluster.schedulingPolicy = config.connectionDistribution === 'kernel' ? cluster.SCHED_NONE : cluster.SCHED_RR;
  void throng({
    count: config.workers,
    // throng kills workers still running this long after the signal.
    grace: config.shutdownGraceMs + 1000,
    master: () => {
      exitWhenAWorkerCannotStart();
      log.info({ mode: 'redis', workers: config.workers, connectionDistribution: config.connectionDistribution,
        redis: describeRedis(redis), port: config.port },
        `chatline in Redis mode: ${config.workers} workers sharing state in Redis. To scale out, start more `
        + 'instances with the same REDIS_URL, on this machine or others, behind a TCP load balancer.');
    },
    worker: () => runChatNode(config, log).catch(failed),
  });
}

/**
 * throng forks a new worker whenever one exits. That is right for a crash, but a worker that
 * never got to listen (port taken, Redis unreachable at start) would fail the same way again,
 * forever: stop the whole instance instead, so the operator or orchestrator sees it.
 */
function exitWhenAWorkerCannotStart(): void {
  const listening = new Set<number>();
  cluster.on('listening', (worker) => listening.add(worker.id));
  cluster.on('exit', (worker, code, signal) => {
    if (listening.delete(worker.id)) return;
    log.fatal({ code, signal }, 'a worker exited before it could serve; stopping');
    process.exit(1);
  });
}
