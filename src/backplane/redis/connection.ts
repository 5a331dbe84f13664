import { Redis } from 'ioredis';

// The one place Redis clients are made, so every connection fails the same way: a command
// sent while Redis is unreachable errors at once instead of waiting in an offline queue, and
// one that gets no answer errors after a second. Callers turn both into SERVICE UNAVAILABLE.

const COMMAND_TIMEOUT_MS = 1000;

export async function connectRedis(url: string, role: string): Promise<Redis> {
  const client = new Redis(url, {
    connectionName: `chatline:${role}`,
    lazyConnect: true,
    enableOfflineQueue: false,
    enableAutoPipelining: true,
    maxRetriesPerRequest: 0,
    commandTimeout: COMMAND_TIMEOUT_MS,
    retryStrategy: (attempt) => Math.min(50 * attempt, 1000),
  });
  await client.connect();
  return client;
}
