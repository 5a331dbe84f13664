import { Cluster, Redis, ReplyError, type ClusterOptions, type RedisOptions } from 'ioredis';
import type { RedisSettings } from '../../config.js';
import { ConfigError, describeRedis } from '../../config.js';
import type { Logger } from '../../log.js';
import { metrics } from '../../metrics.js';
import { BackplaneUnavailableError, type UnavailableReason } from '../errors.js';
import { UNPIPELINED_COMMANDS } from './scripts.js';

// The one place Redis clients are made, so every connection fails the same way: a command
// sent while Redis is unreachable errors at once instead of waiting in an offline queue. No
// client-side command timeout: a command that Redis does not answer in time is given up by
// the caller (see reply-wait.ts), which still sees the reply if it comes later, and so knows
// whether the command took effect.

export type RedisClient = Redis | Cluster;

/** 'commands' or 'deliveries': what the connection is for, in logs, metrics and CLIENT LIST. */
export type ConnectionRole = 'commands' | 'deliveries';

const MAX_RECONNECT_DELAY_MS = 2000;

/** Reconnect soon, then back off (with jitter, so a fleet does not reconnect in lockstep). */
export function reconnectDelay(attempt: number): number {
  const capped = Math.min(MAX_RECONNECT_DELAY_MS, 50 * 2 ** Math.min(attempt, 6));
  return Math.round(capped / 2 + Math.random() * (capped / 2));
}

export function createRedisClient(settings: RedisSettings, role: ConnectionRole, workerId: string): RedisClient {
  const perConnection = {
    connectionName: `chatline:${workerId}:${role}`,
    protocol: 2,
    username: settings.username,
    password: settings.password,
    maxRetriesPerRequest: 0,
    // Subscriptions are made again by Subscriptions itself, which knows what was lost.
    autoResubscribe: false,
    // A demoted primary answers writes with READONLY: find the new primary.
    reconnectOnError: (error: Error) => (error.message.startsWith('READONLY') ? 1 as const : false),
    ...(settings.tlsCa === undefined ? {} : { tls: { ca: settings.tlsCa } }),
  } satisfies RedisOptions;
  const common: RedisOptions = {
    ...perConnection,
    enableOfflineQueue: false,
    enableAutoPipelining: true,
    autoPipeliningIgnoredCommands: UNPIPELINED_COMMANDS,
    lazyConnect: true,
    retryStrategy: reconnectDelay,
  };
  const { topology } = settings;
  switch (topology.kind) {
    case 'single':
      return new Redis(topology.url, common);
    case 'sentinel':
      return new Redis({
        ...common,
        sentinels: topology.sentinels,
        name: topology.name,
        // Moves to the new primary as soon as the sentinels announce it, instead of waiting for
        // the old one to drop the connection.
        failoverDetector: true,
        sentinelRetryStrategy: reconnectDelay,
        sentinelPassword: settings.sentinelPassword,
      });
    case 'cluster': {
      const options: ClusterOptions = {
        redisOptions: perConnection,
        enableOfflineQueue: false,
        enableAutoPipelining: true,
        autoPipeliningIgnoredCommands: UNPIPELINED_COMMANDS,
        lazyConnect: true,
        clusterRetryStrategy: reconnectDelay,
        // Slot ownership is read again this often even when nothing failed (5.x had no default).
        slotsRefreshInterval: 5000,
        shardedSubscribers: role === 'deliveries',
      };
      return new Cluster(topology.nodes, options);
    }
  }
}

/**
 * Connects, retrying with capped backoff for as long as it takes: a worker that starts before
 * Redis waits for it (and is not ready meanwhile) instead of crashing. One log line per failed
 * attempt names the Redis it tried, password redacted.
 */
export async function connectPatiently(client: RedisClient, settings: RedisSettings, role: ConnectionRole, log: Logger): Promise<void> {
  let attempt = 0;
  for (;;) {
    try {
      await client.connect();
      return;
    } catch (error) {
      attempt++;
      log.warn({ role, attempt, redis: describeRedis(settings), err: (error as Error).message },
        `cannot reach Redis (${describeRedis(settings)}); retrying`);
      client.disconnect();
      await new Promise((resolve) => setTimeout(resolve, reconnectDelay(attempt)));
    }
  }
}

/** Logs a lost connection once and its return once, and counts reconnects. */
export function watchConnection(client: RedisClient, role: ConnectionRole, log: Logger): void {
  let lost = false;
  client.on('error', (error: Error) => {
    if (!lost) log.warn({ role, err: error.message }, 'redis connection lost; reconnecting');
    lost = true;
  });
  client.on('close', () => { lost = true; });
  client.on('ready', () => {
    if (!lost) return;
    lost = false;
    metrics.redisReconnects.inc({ role });
    log.info({ role }, 'redis connection back');
  });
}

// Replies that mean Redis cannot take writes now, rather than that we sent something wrong.
const UNAVAILABLE_REPLIES: [prefix: string, reason: UnavailableReason][] = [
  ['OOM', 'not-writable'], ['READONLY', 'not-writable'], ['NOREPLICAS', 'not-writable'],
  ['LOADING', 'unreachable'], ['MASTERDOWN', 'unreachable'], ['CLUSTERDOWN', 'unreachable'],
  ['TRYAGAIN', 'unreachable'], ['BUSY', 'unreachable'],
];

/**
 * Redis failures as the backplane reports them: the connection or the server being unable is
 * BackplaneUnavailableError; any other error reply (a script bug, a wrong type) stays what it
 * is, so that it surfaces as a bug instead of looking like an outage.
 */
export function asBackplaneError(error: unknown): unknown {
  if (error instanceof BackplaneUnavailableError) return error;
  if (error instanceof ReplyError) {
    const { message } = error as Error;
    const found = UNAVAILABLE_REPLIES.find(([prefix]) => message.startsWith(prefix));
    return found ? new BackplaneUnavailableError(found[1], { cause: error }) : error;
  }
  // Our own mistakes are never an outage.
  if (error instanceof TypeError || error instanceof RangeError || error instanceof ReferenceError
    || error instanceof SyntaxError) return error;
  return new BackplaneUnavailableError('unreachable', { cause: error });
}

/**
 * An evicting maxmemory-policy silently breaks name uniqueness: Redis may evict a user's hash
 * (freeing a name that is in use) or a worker's heartbeat (getting it reaped while alive).
 */
export async function requireNoEviction(client: RedisClient, log: Logger): Promise<void> {
  const nodes = client instanceof Cluster ? client.nodes('master') : [client];
  for (const node of nodes) {
    let policy: string | undefined;
    try {
      policy = ((await node.config('GET', 'maxmemory-policy')) as string[])[1];
    } catch (error) {
      // Managed Redis services often rename CONFIG; their default policy is the operator's to check.
      log.warn({ err: (error as Error).message }, 'could not read Redis maxmemory-policy; make sure it is noeviction');
      return;
    }
    if (policy !== undefined && policy !== 'noeviction') {
      throw new ConfigError(`Redis maxmemory-policy is ${policy}: chatline needs noeviction, because an evicted key `
        + 'frees a name that is in use or gets a live worker taken for dead. Set maxmemory-policy noeviction '
        + '(redis.conf or CONFIG SET), or leave maxmemory unset.');
    }
  }
}
