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
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  MAX_LINE_BYTES: integer(16, 1024 * 1024).default(1024),
  MAX_ROOMS_PER_USER: integer(1, 100_000).default(100),
  MAX_PENDING_BYTES: integer(1024).default(1024 * 1024),
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
  logLevel: z.infer<typeof schema>['LOG_LEVEL'];
  maxLineBytes: number;
  maxRoomsPerUser: number;
  /** Bytes waiting to be sent to one client before it is cut off as a reader that does not read. */
  maxPendingBytes: number;
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
    logLevel: values.LOG_LEVEL,
    maxLineBytes: values.MAX_LINE_BYTES,
    maxRoomsPerUser: values.MAX_ROOMS_PER_USER,
    maxPendingBytes: values.MAX_PENDING_BYTES,
  };
}
