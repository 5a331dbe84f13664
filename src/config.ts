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

const redisUrl = z.string().refine((value) => {
  try {
    return ['redis:', 'rediss:'].includes(new URL(value).protocol);
  } catch {
    return false;
  }
}, { error: 'must be a URL like redis://host:6379' });

const schema = z.object({
  HOST: z.string().min(1).default('0.0.0.0'),
  PORT: integer(0, 65535).default(8888),
  HEALTH_PORT: integer(0, 65535).default(8080),
  REDIS_URL: redisUrl.optional(),
  REDIS_PREFIX: z.string().min(1).max(64).regex(/^[^{}\s]+$/, { error: 'must not contain braces or spaces' }).default('chat:'),
  WORKERS: integer(1, 1024).optional(),
  CONNECTION_DISTRIBUTION: z.enum(['round-robin', 'kernel']).default('round-robin'),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  MAX_LINE_BYTES: integer(16, 1024 * 1024).default(1024),
  MAX_ROOMS_PER_USER: integer(1, 100_000).default(100),
  MAX_PENDING_BYTES: integer(1024).default(1024 * 1024),
  MAX_CONNECTIONS: integer(1, 1_000_000).default(10_000),
  RATE_PER_SEC: integer(0, 1_000_000).default(100),
  RATE_BURST: integer(1, 1_000_000).default(200),
  IDLE_TIMEOUT_MS: integer(0).default(0),
  SHUTDOWN_GRACE_MS: integer(100, 600_000).default(10_000),
  NODE_TTL_MS: integer(1000, 600_000).default(10_000),
});

/** Every environment variable chatline reads. */
export const CONFIG_VARIABLES = Object.keys(schema.shape);

export interface Config {
  host: string;
  port: number;
  /** HTTP port for /healthz and /readyz, on the same host as the chat port. */
  healthPort: number;
  /** Unset: embedded mode, one process with in-memory state. */
  redisUrl: string | undefined;
  redisPrefix: string;
  workers: number;
  /**
   * How new connections reach workers: the primary hands them out in turn (even spread), or
   * every worker accepts from the shared socket itself (faster to accept, spread left to the kernel).
   */
  connectionDistribution: 'round-robin' | 'kernel';
  logLevel: z.infer<typeof schema>['LOG_LEVEL'];
  maxLineBytes: number;
  maxRoomsPerUser: number;
  /** Bytes waiting to be sent to one client before it is cut off as a reader that does not read. */
  maxPendingBytes: number;
  /** Clients one worker serves at once; the next gets ERROR SERVER FULL. */
  maxConnections: number;
  /** Sustained commands per second per connection (0: no limit), and the burst allowed. */
  ratePerSec: number;
  rateBurst: number;
  /** Close a connection silent this long (0: never). */
  idleTimeoutMs: number;
  /** Longest a graceful stop takes, from the signal to the exit. */
  shutdownGraceMs: number;
  /** A worker silent this long is taken for dead and its sessions released. */
  nodeTtlMs: number;
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
  return {
    host: values.HOST,
    port: values.PORT,
    healthPort: values.HEALTH_PORT,
    redisUrl: values.REDIS_URL,
    redisPrefix: values.REDIS_PREFIX,
    workers: values.WORKERS ?? availableParallelism(),
    connectionDistribution: values.CONNECTION_DISTRIBUTION,
    logLevel: values.LOG_LEVEL,
    maxLineBytes: values.MAX_LINE_BYTES,
    maxRoomsPerUser: values.MAX_ROOMS_PER_USER,
    maxPendingBytes: values.MAX_PENDING_BYTES,
    maxConnections: values.MAX_CONNECTIONS,
    ratePerSec: values.RATE_PER_SEC,
    rateBurst: values.RATE_BURST,
    idleTimeoutMs: values.IDLE_TIMEOUT_MS,
    shutdownGraceMs: values.SHUTDOWN_GRACE_MS,
    nodeTtlMs: values.NODE_TTL_MS,
  };
}
