import { ConfigError, type Config } from './config.js';
import { startHealthServer } from './health.js';
import { BindError } from './listen.js';
import type { Logger } from './log.js';
import { registry } from './metrics.js';
import { ChatNode } from './node.js';

// Embedded mode: one process, in-memory state, answering HEALTH_PORT itself.

export async function runEmbedded(config: Config, log: Logger): Promise<void> {
  const node = new ChatNode(config, log);
  let health;
  try {
    health = await startHealthServer(config.host, config.healthPort, {
      report: () => ({
        draining: node.status().state === 'draining',
        expectedWorkers: 1,
        workers: [{ pid: process.pid, ...node.status(), stuck: false, lastSeenMs: 0 }],
      }),
      metrics: async () => ({ text: await registry.metrics(), contentType: registry.contentType }),
    });
    await node.start();
  } catch (error) {
    if (!(error instanceof BindError || error instanceof ConfigError)) throw error;
    log.fatal(error.message);
    process.exit(1);
  }
  const stop = async (signal: string) => {
    await node.stop(signal);
    health.close();
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
}
