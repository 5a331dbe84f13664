import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { z } from 'zod';

// The environment, read and validated once at start. Every setting is listed here with its
// default; a bad value stops the server with one line naming the variable.

export class ConfigError extends Error {
  override name = 'ConfigError';
}

const integer = (min: number, max = Number.MAX_SAFE_INTEGER) =>
  z.string()
    .regex(/^\d+$/, { error: `must be a whole number from ${min} to ${max}` })
    .transform(Number)
    .pipe(z.number().min(min, { error: `must be at least ${min}` }).max(max, { error: `must be at most ${max}` }));

const flag = z.enum(['true', 'false'], { error: 'must be true or false' }).transform((value) => value === 'true');

const redisUrl = z.string().refine((value) => {
  try {
    return ['redis:', 'rediss:'].includes(new URL(value).protocol);
  } catch {
    return false;
  }
}, { error: 'must be a URL like redis://host:6379' });

const HOST_PORT = /^[^\s,:]+:\d{1,5}$|^\[[0-9a-fA-F:.]+\]:\d{1,5}$/;
const hostPortList = z.string()
  .transform((value) => value.split(',').map((item) => item.trim()).filter(Boolean))
  .refine((items) => items.length > 0 && items.every((item) => HOST_PORT.test(item)),
    { error: 'must be a comma-separated list of host:port' });

const schema = z.object({
  HOST: z.string().min(1).default('0.0.0.0'),
  PORT: integer(0, 65535).default(8888),
  HEALTH_PORT: integer(0, 65535).default(8080),
  TLS_PORT: integer(0, 65535).optional(),
  TLS_CERT_FILE: z.string().min(1).optional(),
  TLS_KEY_FILE: z.string().min(1).optional(),
  PROXY_PROTOCOL: flag.default(false),
  REDIS_URL: redisUrl.optional(),
  REDIS_SENTINELS: hostPortList.optional(),
  REDIS_SENTINEL_NAME: z.string().min(1).optional(),
  REDIS_CLUSTER_NODES: hostPortList.optional(),
  REDIS_USERNAME: z.string().min(1).optional(),
  REDIS_PASSWORD_FILE: z.string().min(1).optional(),
  REDIS_SENTINEL_PASSWORD_FILE: z.string().min(1).optional(),
  REDIS_TLS_CA_FILE: z.string().min(1).optional(),
  REDIS_PREFIX: z.string().min(1).max(64).regex(/^[^{}\s]+$/, { error: 'must not contain braces or spaces' }).default('chat:'),
  WORKERS: integer(1, 1024).optional(),
  CONNECTION_DISTRIBUTION: z.enum(['round-robin', 'kernel']).default('round-robin'),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  MAX_LINE_BYTES: integer(16, 1024 * 1024).default(1024),
  MAX_ROOMS_PER_USER: integer(1, 100_000).default(100),
  MAX_ROOM_MEMBERS: integer(2, 1_000_000).default(10_000),
  MAX_PENDING_BYTES: integer(1024).default(1024 * 1024),
  MAX_WORKER_PENDING_BYTES: integer(1024).default(256 * 1024 * 1024),
  MAX_CONNECTIONS: integer(1, 1_000_000).default(10_000),
  MAX_CONNECTIONS_PER_IP: integer(0, 1_000_000).default(0),
  RATE_PER_SEC: integer(0, 1_000_000).default(100),
  RATE_BURST: integer(1, 1_000_000).default(200),
  RATE_LIMIT_STRIKES: integer(1, 1_000_000).default(100),
  IDLE_TIMEOUT_MS: integer(0).default(0),
  LOGIN_TIMEOUT_MS: integer(0).default(60_000),
  KEEPALIVE_MS: integer(0, 2_147_483).default(60_000),
  SHUTDOWN_GRACE_MS: integer(100, 600_000).default(10_000),
  NODE_TTL_MS: integer(1000, 600_000).default(10_000),
  WATCHDOG_MS: integer(1000, 600_000).optional(),
});

/** Every environment variable chatline reads. */
export const CONFIG_VARIABLES = Object.keys(schema.shape);

/** Where the shared state lives: nowhere (embedded), one primary, a Sentinel set, or a Cluster. */
export type RedisTopology =
  | { kind: 'single'; url: string }
  | { kind: 'sentinel'; sentinels: HostPort[]; name: string }
  | { kind: 'cluster'; nodes: HostPort[] };

export interface HostPort {
  host: string;
  port: number;
}

export interface RedisSettings {
  topology: RedisTopology;
  /** ACL user and password; from the URL, REDIS_USERNAME or REDIS_PASSWORD_FILE. Never logged. */
  username: string | undefined;
  password: string | undefined;
  /** The sentinels' own password, when they require one (REDIS_SENTINEL_PASSWORD_FILE). */
  sentinelPassword: string | undefined;
  /** Extra CA certificates to trust for rediss:// (PEM). */
  tlsCa: string | undefined;
  prefix: string;
}

export interface TlsSettings {
  port: number;
  certFile: string;
  keyFile: string;
}

export interface Config {
  host: string;
  port: number;
  /** HTTP port for /healthz, /readyz and /metrics, on the same host as the chat port. */
  healthPort: number;
  /** A TLS listener beside the plain one, when TLS_PORT is set. */
  tls: TlsSettings | undefined;
  /** Every listener expects a PROXY protocol v2 header first (from a load balancer). */
  proxyProtocol: boolean;
  /** Unset: embedded mode, one process with in-memory state. */
  redis: RedisSettings | undefined;
  workers: number;
  /**
   * How new connections reach workers: the primary hands them out in turn (even spread), or
   * every worker accepts from the shared socket itself (faster to accept, spread left to the kernel).
   */
  connectionDistribution: 'round-robin' | 'kernel';
  logLevel: z.infer<typeof schema>['LOG_LEVEL'];
  maxLineBytes: number;
  maxRoomsPerUser: number;
  /** Members a room may hold; the next JOIN gets ERROR ROOM FULL. */
  maxRoomMembers: number;
  /** Bytes waiting to be sent to one client before it is cut off as a reader that does not read. */
  maxPendingBytes: number;
  /** Bytes waiting for all of one worker's clients; past it the largest backlogs are shed. */
  maxWorkerPendingBytes: number;
  /** Clients one worker serves at once; the next gets ERROR SERVER FULL. */
  maxConnections: number;
  /** Clients one instance serves from one address (0: no limit). */
  maxConnectionsPerIp: number;
  /** Sustained commands per second per connection (0: no limit), and the burst allowed. */
  ratePerSec: number;
  rateBurst: number;
  /** ERROR RATE LIMITED refusals a connection may collect (one forgiven per second) before it is closed. */
  rateLimitStrikes: number;
  /** Close a connection that sent no complete command for this long (0: never). */
  idleTimeoutMs: number;
  /** Close a connection that has not logged in this long after connecting (0: never). */
  loginTimeoutMs: number;
  /** TCP keepalive idle time on client sockets (0: off). */
  keepaliveMs: number;
  /** Longest a graceful stop takes, from the signal to the exit. */
  shutdownGraceMs: number;
  /** A worker silent this long is taken for dead and its sessions released. */
  nodeTtlMs: number;
  /** A worker whose event loop does not answer the primary for this long is killed and replaced. */
  watchdogMs: number;
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  // An empty variable means "not set", as it does in most shells' and compose files' eyes.
  const present = Object.fromEntries(Object.entries(env).filter(([, value]) => value !== ''));
  const parsed = schema.safeParse(present);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const variable = String(issue.path[0]);
    throw new ConfigError(`${variable}=${JSON.stringify(env[variable])} ${issue.message}`);
  }
  const values = parsed.data;
  checkPortsDiffer(values);
  return {
    host: values.HOST,
    port: values.PORT,
    healthPort: values.HEALTH_PORT,
    tls: tlsSettings(values),
    proxyProtocol: values.PROXY_PROTOCOL,
    redis: redisSettings(values),
    workers: values.WORKERS ?? availableParallelism(),
    connectionDistribution: values.CONNECTION_DISTRIBUTION,
    logLevel: values.LOG_LEVEL,
    maxLineBytes: values.MAX_LINE_BYTES,
    maxRoomsPerUser: values.MAX_ROOMS_PER_USER,
    maxRoomMembers: values.MAX_ROOM_MEMBERS,
    maxPendingBytes: values.MAX_PENDING_BYTES,
    maxWorkerPendingBytes: atLeast(values, 'MAX_WORKER_PENDING_BYTES', 'MAX_PENDING_BYTES'),
    maxConnections: values.MAX_CONNECTIONS,
    maxConnectionsPerIp: values.MAX_CONNECTIONS_PER_IP,
    ratePerSec: values.RATE_PER_SEC,
    rateBurst: values.RATE_BURST,
    rateLimitStrikes: values.RATE_LIMIT_STRIKES,
    idleTimeoutMs: values.IDLE_TIMEOUT_MS,
    loginTimeoutMs: values.LOGIN_TIMEOUT_MS,
    keepaliveMs: values.KEEPALIVE_MS,
    shutdownGraceMs: values.SHUTDOWN_GRACE_MS,
    nodeTtlMs: values.NODE_TTL_MS,
    watchdogMs: values.WATCHDOG_MS ?? values.NODE_TTL_MS,
  };
}

type Values = z.infer<typeof schema>;

/** Two listeners on one port would fail at bind time, with a message about the wrong one. */
function checkPortsDiffer(values: Values): void {
  const ports: [string, number | undefined][] = [['PORT', values.PORT], ['TLS_PORT', values.TLS_PORT], ['HEALTH_PORT', values.HEALTH_PORT]];
  for (const [i, [name, port]] of ports.entries()) {
    for (const [otherName, otherPort] of ports.slice(i + 1)) {
      if (port !== undefined && port !== 0 && port === otherPort) {
        throw new ConfigError(`${otherName}=${otherPort} must differ from ${name}: both would listen on port ${port}`);
      }
    }
  }
}

function atLeast(values: Values, name: 'MAX_WORKER_PENDING_BYTES', floor: 'MAX_PENDING_BYTES'): number {
  if (values[name] < values[floor]) {
    throw new ConfigError(`${name}=${values[name]} must be at least ${floor} (${values[floor]})`);
  }
  return values[name];
}

function tlsSettings(values: Values): TlsSettings | undefined {
  const given = { TLS_PORT: values.TLS_PORT, TLS_CERT_FILE: values.TLS_CERT_FILE, TLS_KEY_FILE: values.TLS_KEY_FILE };
  const set = Object.entries(given).filter(([, value]) => value !== undefined).map(([name]) => name);
  if (set.length === 0) return undefined;
  if (set.length < 3) {
    throw new ConfigError(`${set.join(' and ')} set without ${Object.keys(given).filter((name) => !set.includes(name)).join(' and ')}: `
      + 'a TLS listener needs TLS_PORT, TLS_CERT_FILE and TLS_KEY_FILE together');
  }
  return { port: values.TLS_PORT!, certFile: values.TLS_CERT_FILE!, keyFile: values.TLS_KEY_FILE! };
}

function hostPort(item: string): HostPort {
  const colon = item.lastIndexOf(':');
  return { host: item.slice(0, colon).replace(/^\[|\]$/g, ''), port: Number(item.slice(colon + 1)) };
}

function redisSettings(values: Values): RedisSettings | undefined {
  const topologies = ['REDIS_URL', 'REDIS_SENTINELS', 'REDIS_CLUSTER_NODES'].filter((name) => values[name as keyof Values] !== undefined);
  if (topologies.length > 1) {
    throw new ConfigError(`${topologies.join(' and ')} are both set: set exactly one of REDIS_URL (one primary), `
      + 'REDIS_SENTINELS (with REDIS_SENTINEL_NAME) or REDIS_CLUSTER_NODES');
  }
  if ((values.REDIS_SENTINELS === undefined) !== (values.REDIS_SENTINEL_NAME === undefined)) {
    throw new ConfigError('REDIS_SENTINELS and REDIS_SENTINEL_NAME go together: the sentinels and the name of the primary they watch');
  }
  const credentialsOnly = ['REDIS_USERNAME', 'REDIS_PASSWORD_FILE', 'REDIS_SENTINEL_PASSWORD_FILE', 'REDIS_TLS_CA_FILE']
    .filter((name) => values[name as keyof Values] !== undefined);
  if (topologies.length === 0) {
    if (credentialsOnly.length > 0) throw new ConfigError(`${credentialsOnly[0]} is set, but no Redis is (REDIS_URL, REDIS_SENTINELS or REDIS_CLUSTER_NODES)`);
    return undefined;
  }
  let topology: RedisTopology;
  let username = values.REDIS_USERNAME;
  let password: string | undefined;
  if (values.REDIS_URL !== undefined) {
    topology = { kind: 'single', url: values.REDIS_URL };
    const url = new URL(values.REDIS_URL);
    if (url.username) username ??= decodeURIComponent(url.username);
    if (url.password) password = decodeURIComponent(url.password);
  } else if (values.REDIS_SENTINELS !== undefined) {
    topology = { kind: 'sentinel', sentinels: values.REDIS_SENTINELS.map(hostPort), name: values.REDIS_SENTINEL_NAME! };
  } else {
    topology = { kind: 'cluster', nodes: values.REDIS_CLUSTER_NODES!.map(hostPort) };
  }
  if (values.REDIS_PASSWORD_FILE !== undefined) {
    if (password !== undefined) throw new ConfigError('REDIS_URL carries a password and REDIS_PASSWORD_FILE is set too: keep one');
    password = readSecret('REDIS_PASSWORD_FILE', values.REDIS_PASSWORD_FILE);
  }
  if (values.REDIS_SENTINEL_PASSWORD_FILE !== undefined && topology.kind !== 'sentinel') {
    throw new ConfigError('REDIS_SENTINEL_PASSWORD_FILE is set without REDIS_SENTINELS');
  }
  const sentinelPassword = values.REDIS_SENTINEL_PASSWORD_FILE === undefined
    ? undefined : readSecret('REDIS_SENTINEL_PASSWORD_FILE', values.REDIS_SENTINEL_PASSWORD_FILE);
  const tlsCa = values.REDIS_TLS_CA_FILE === undefined ? undefined : readSecret('REDIS_TLS_CA_FILE', values.REDIS_TLS_CA_FILE);
  return { topology, username, password, sentinelPassword, tlsCa, prefix: values.REDIS_PREFIX };
}

function readSecret(variable: string, path: string): string {
  // A trailing newline is how most editors and `kubectl create secret --from-file` leave it.
  return readConfiguredFile(variable, path).toString('utf8').replace(/\r?\n$/, '');
}

/** The file a setting names; one that cannot be read is a ConfigError naming the setting. */
export function readConfiguredFile(variable: string, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (error) {
    throw new ConfigError(`${variable}=${JSON.stringify(path)} cannot be read: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
  }
}

/** A Redis address for logs: the URL without its password, or the list of nodes. */
export function describeRedis(redis: RedisSettings): string {
  const { topology } = redis;
  if (topology.kind === 'single') {
    const url = new URL(topology.url);
    if (url.password) url.password = '***';
    return `REDIS_URL=${url.toString()}`;
  }
  const list = (nodes: HostPort[]) => nodes.map(({ host, port }) => `${host}:${port}`).join(',');
  if (topology.kind === 'sentinel') return `REDIS_SENTINELS=${list(topology.sentinels)} REDIS_SENTINEL_NAME=${topology.name}`;
  return `REDIS_CLUSTER_NODES=${list(topology.nodes)}`;
}
