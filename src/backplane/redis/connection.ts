import { Redis } from 'ioredis';
import type { Logger } from '../../log.js';
import { UNPIPELINED_SCRIPTS } from './scripts.js';

// The one place Redis clients are made, so every connection fails the same way: a command
// sent while Redis is unreachable errors at once instead of waiting in an offline queue, and
// one that gets no answer errors soon. Callers turn both into SERVICE UNAVAILABLE. The
// timeout is under half a second because JOIN takes two round trips and the protocol
// promises an answer within one.

const COMMAND_TIMEOUT_MS = 450;

export async function connectRedis(url: string, role: string, log: Logger): Promise<Redis> {
  const client = new Redis(url, {
    connectionName: `chatline:${role}`,
    protocol: 2,
    lazyConnect: true,
    enableOfflineQueue: false,
    enableAutoPipelining: true,
    autoPipeliningIgnoredCommands: UNPIPELINED_SCRIPTS,
    maxRetriesPerRequest: 0,
    commandTimeout: COMMAND_TIMEOUT_MS,
    retryStrategy: (attempt) => Math.min(50 * attempt, 1000),
  });
  // ioredis reconnects by itself; without a listener each failed attempt is an unhandled error.
  let down = false;
  client.on('error', (error: Error) => {
    if (!down) log.warn({ role, err: error }, 'redis connection lost; reconnecting');
    down = true;
  });
  client.on('ready', () => {
    if (down) log.info({ role }, 'redis connection back');
    down = false;
  });
  await client.connect();
  return client;
}
