import { ConfigError, type Config } from './config.js';
import { BindError } from './listen.js';
import type { Logger } from './log.js';
import { registry } from './metrics.js';
import { ChatNode } from './node.js';
import { type PrimaryMessage, STATUS_INTERVAL_MS, tellPrimary } from './supervisor/ipc.js';

// A worker of a Redis-mode instance: one ChatNode that reports to its primary. The status it
// sends every second is also its heartbeat: sent from this event loop, it stops when the loop
// is stuck, and the primary's watchdog notices.

export async function runWorker(config: Config, rootLog: Logger): Promise<void> {
  const node = new ChatNode(config, rootLog);
  const report = () => tellPrimary({ chatline: 'status', status: node.status() });
  setInterval(report, STATUS_INTERVAL_MS).unref();
  report();
  process.on('message', (message: PrimaryMessage) => {
    if (message?.chatline !== 'metrics?') return;
    void registry.getMetricsAsJSON().then((metrics) => tellPrimary({ chatline: 'metrics', request: message.request, metrics }));
  });
  const stop = async (why: string) => {
    await node.stop(why);
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
  // The primary is gone (killed): a worker on its own serves nobody it can be asked about.
  process.on('disconnect', () => void stop('primary gone'));

  try {
    await node.start();
    report();
  } catch (error) {
    if (!(error instanceof BindError || error instanceof ConfigError)) throw error;
    // Would fail the same way after a restart: the primary stops the instance with this line.
    tellPrimary({ chatline: 'fatal', message: error.message }, () => process.exit(1));
  }
}
