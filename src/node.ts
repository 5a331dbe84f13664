import { randomBytes } from 'node:crypto';
import { MemoryBackplane, MemoryState } from './backplane/memory.js';
import { RedisBackplane } from './backplane/redis/index.js';
import type { Backplane } from './backplane/types.js';
import type { Config } from './config.js';
import { startHealthServer } from './health.js';
import type { Logger } from './log.js';
import { ChatServer } from './server.js';

// One serving process: a backplane plus a TCP server, with a graceful stop on SIGTERM/SIGINT.
// In embedded mode it is the whole service; in Redis mode it is one worker among many.

export async function runChatNode(config: Config, rootLog: Logger): Promise<void> {
  // Random, not the pid: pids repeat across containers and restarts, worker ids must not.
  const workerId = randomBytes(5).toString('base64url');
  const log = rootLog.child({ worker: workerId });
  const server = new ChatServer({ workerId, log, limits: config, maxConnections: config.maxConnections });
  const backplane: Backplane = config.redis?.topology.kind === 'single'
    ? await RedisBackplane.connect({
      url: config.redis.topology.url,
      prefix: config.redis.prefix,
      workerId,
      maxRoomsPerUser: config.maxRoomsPerUser,
      nodeTtlMs: config.nodeTtlMs,
      deliver: server.deliver,
      liveSessions: () => server.allSessions,
      log,
    })
    : new MemoryBackplane(new MemoryState(), server.deliver, config.maxRoomsPerUser);
  let stopping = false;
  const health = await startHealthServer(config.host, config.healthPort, () => ({
    ready: !stopping && backplane.isHealthy(),
    draining: stopping,
    sharedState: backplane.isHealthy() ? 'reachable' : 'unreachable',
    clients: server.clientCount,
  }));
  const address = await server.listen(backplane, config.host, config.port);
  log.info({ host: address.address, port: address.port, healthPort: config.healthPort }, 'listening');

  const stop = async (signal: string) => {
    if (stopping) return;
    // Not ready from here on, so load balancers stop sending new clients while we drain.
    stopping = true;
    // Armed before anything that could block (even a log write), so the stop always ends.
    const overdue = setTimeout(() => {
      log.error({ clients: server.clientCount }, 'graceful stop overran SHUTDOWN_GRACE_MS; exiting now');
      process.exit(1);
    }, config.shutdownGraceMs);
    overdue.unref();
    log.info({ signal, clients: server.clientCount }, 'shutting down');
    // Half the grace period at most for spreading the goodbyes; the rest for logouts.
    await server.close(config.shutdownGraceMs / 2);
    await backplane.close();
    health.close();
    log.info('stopped');
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
}
