import cluster from 'node:cluster';
import throng from 'throng';
import { ConfigError, describeRedis, loadConfig, type Config } from './config.js';
import { runEmbedded } from './embedded.js';
import { createLogger, routeConsoleToLogger } from './log.js';
import { runPrimary } from './supervisor/primary.js';
import { runWorker } from './worker.js';

// Entry point. Without Redis settings: one process, in-memory state. With them: a primary and
// WORKERS worker processes (node:cluster through throng) sharing one TCP port here and one
// state in Redis.

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
// Libraries that print (ioredis' warnings) do so as JSON lines like ours.
routeConsoleToLogger(log);

async function failed(error: unknown): Promise<never> {
  log.fatal({ err: error }, 'could not start');
  process.exit(1);
}

if (!config.redis) {
  log.info({ mode: 'embedded', port: config.port },
    'chatline in embedded mode: one process, in-memory state. To scale out, start it with '
    + 'REDIS_URL=redis://host:6379 (and WORKERS=n); every such instance on one Redis is one chat service.');
  runEmbedded(config, log).catch(failed);
} else {
  const redis = config.redis;
  // Set before the first fork; it overrides NODE_CLUSTER_SCHED_POLICY. Round-robin waits for
  // each worker to take a connection before handing it the next, so it accepts more slowly.
  cluster.schedulingPolicy = config.connectionDistribution === 'kernel' ? cluster.SCHED_NONE : cluster.SCHED_RR;
  void throng({
    count: config.workers,
    // The primary replaces workers itself, with a backoff (supervisor/primary.ts).
    lifetime: 0,
    // throng kills workers still running this long after the signal.
    grace: config.shutdownGraceMs + 1000,
    master: async () => {
      await runPrimary(config, log);
      log.info({ mode: 'redis', workers: config.workers, connectionDistribution: config.connectionDistribution,
        redis: describeRedis(redis), port: config.port, healthPort: config.healthPort },
      `chatline in Redis mode: ${config.workers} workers sharing state in Redis. To scale out, start more `
        + 'instances with the same Redis, on this machine or others, behind a TCP load balancer.');
    },
    worker: () => runWorker(config, log).catch(failed),
  });
}
