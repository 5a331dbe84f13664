import type { ConnectionOptions } from 'node:tls';
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

const FIRST_RECONNECT_DELAY_MS = 50;
const MAX_RECONNECT_DELAY_MS = 2000;

/** Reconnect soon, then back off (with jitter, so a fleet does not reconnect in lockstep). */
export function reconnectDelay(attempt: number): number {
  const capped = Math.min(MAX_RECONNECT_DELAY_MS, FIRST_RECONNECT_DELAY_MS * 2 ** attempt);
  return Math.round(capped / 2 + Math.random() * (capped / 2));
}

/**
 * TLS to Redis is on with a rediss:// URL or with REDIS_TLS_CA_FILE (the only way to ask for it
 * with Sentinel or Cluster, which have no URL). The CA file, when given, is the only CA trusted
 * (as redis-cli --cacert does); without it, Node's public CAs are.
 */
export function redisTls(settings: RedisSettings): ConnectionOptions | undefined {
  const rediss = settings.topology.kind === 'single' && new URL(settings.topology.url).protocol === 'rediss:';
  if (!rediss && settings.tlsCa === undefined) return undefined;
  return settings.tlsCa === undefined ? {} : { ca: settings.tlsCa };
}

// Credentials: the ACL user and password from RedisSettings (REDIS_USERNAME, REDIS_PASSWORD_FILE,
// or the URL's, which config.ts has already taken out) go to every connection of every
// topology, including the sentinels (password only: a Sentinel with requirepass wants the
// same AUTH, one without answers with a warning and serves). They are never part of a string
// that is logged: the URL handed to ioredis has them removed, describeRedis masks them.
export function createRedisClient(settings: RedisSettings, role: ConnectionRole, workerId: string): RedisClient {
  const tls = redisTls(settings);
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
    ...(tls === undefined ? {} : { tls }),
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
      // Without its user and password: ioredis would let the URL's win over REDIS_USERNAME.
      return new Redis(withoutCredentials(topology.url), common);
    case 'sentinel':
      return new Redis({
        ...common,
        sentinels: topology.sentinels,
        name: topology.name,
        // The sentinels' own password when they have one, else (as Bitnami's chart does) the data nodes'.
        sentinelPassword: settings.sentinelPassword ?? settings.password,
        // TLS to the primary and replicas the sentinels name, and to the sentinels themselves.
        ...(tls === undefined ? {} : { enableTLSForSentinelMode: true, sentinelTLS: tls }),
        // Moves to the new primary as soon as the sentinels announce it, instead of waiting for
        // the old one to drop the connection.
        failoverDetector: true,
        sentinelRetryStrategy: reconnectDelay,
      });
    case 'cluster': {
      const options: ClusterOptions = {
        redisOptions: perConnection,
        enableOfflineQueue: false,
        enableAutoPipelining: true,
        autoPipeliningIgnoredCommands: UNPIPELINED_COMMANDS,
        lazyConnect: true,
        clusterRetryStrategy: reconnectDelay,
        // ioredis sends a command again when its node's connection closed before the reply, but
        // the command may have run: a delivery script would then deliver twice. It fails instead,
        // and its caller answers as for any lost reply (reply-wait.ts).
        retryDelayOnFailover: 0,
        // Slot ownership is read again this often even when nothing failed (5.x had no default).
        slotsRefreshInterval: 5000,
        shardedSubscribers: role === 'deliveries',
      };
      return new Cluster(topology.nodes, options);
    }
  }
}

function withoutCredentials(url: string): string {
  const parsed = new URL(url);
  parsed.username = '';
  parsed.password = '';
  return parsed.toString();
}

/** Replies by which Redis refuses who we say we are. */
const AUTH_REFUSALS = /^(WRONGPASS|NOAUTH|NOPERM)|invalid password|invalid username-password/i;
/** What to check when it does: the settings the credentials come from. */
const CREDENTIALS_HINT = 'check REDIS_USERNAME and REDIS_PASSWORD_FILE or the URL\'s user and password; retrying';

/**
 * Connects, retrying with capped backoff for as long as it takes: a worker that starts before
 * Redis waits for it (and is not ready meanwhile) instead of crashing; so does one whose
 * credentials Redis refuses, until the password is fixed (a rotation may be under way). One log
 * line per failed attempt names the Redis it tried, password redacted, and says which it was.
 */
export async function connectPatiently(client: RedisClient, settings: RedisSettings, role: ConnectionRole, log: Logger): Promise<void> {
  let attempt = 0;
  // connect() itself fails with "Connection is closed." when Redis refused the AUTH or the TLS
  // handshake failed; the reason is in the 'error' event just before.
  let reason: Error | undefined;
  const remember = (error: Error) => { reason = error; };
  client.on('error', remember);
  for (;;) {
    reason = undefined;
    try {
      await client.connect();
      client.off('error', remember);
      return;
    } catch (error) {
      attempt++;
      const message = (reason ?? error as Error).message;
      const why = AUTH_REFUSALS.test(message)
        ? `Redis refused our credentials (${describeRedis(settings)}): ${CREDENTIALS_HINT}`
        : `cannot reach Redis (${describeRedis(settings)}); retrying`;
      log.warn({ role, attempt, redis: describeRedis(settings), err: message }, why);
      client.disconnect();
      await new Promise((resolve) => setTimeout(resolve, reconnectDelay(attempt)));
    }
  }
}

/** Logs a lost connection once and its return once, and counts reconnects. */
export function watchConnection(client: RedisClient, role: ConnectionRole, log: Logger): void {
  let lost = false;
  // Before the first ready, connectPatiently says what went wrong, once per attempt.
  let connected = false;
  client.on('error', (error: Error) => {
    if (connected && AUTH_REFUSALS.test(error.message)) {
      // The password changed under a running worker: every reconnect attempt says so.
      log.warn({ role, err: error.message }, `Redis refused our credentials on reconnecting: ${CREDENTIALS_HINT}`);
    } else if (!lost && connected) {
      log.warn({ role, err: error.message }, 'redis connection lost; reconnecting');
    }
    lost = true;
  });
  client.on('close', () => { lost = true; });
  client.on('ready', () => {
    const first = !connected;
    connected = true;
    if (!lost || first) {
      lost = false;
      return;
    }
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
