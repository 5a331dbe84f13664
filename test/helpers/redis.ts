import { spawnSync } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { freePort } from './ports.js';
import { onFreshPorts, redisServerInstalled, requireRedisServer, spawnRedisServer } from './redis-server.js';

// A real Redis for tests, never a mock: a testcontainers Redis where a Docker engine answers,
// else a redis-server spawned on a free port. With neither, startRedis throws and says what to
// install. CHATLINE_TEST_REDIS=docker|process picks one; tests that stop and restart Redis in
// place ask for 'process' themselves.

export interface TestRedis {
  readonly url: string;
  readonly kind: 'docker' | 'process';
  /** A plain client for assertions; closed by stop(). */
  readonly client: Redis;
  stop(): Promise<void>;
}

export interface ProcessRedis extends TestRedis {
  readonly kind: 'process';
  readonly port: number;
  /** The running redis-server's process id (a new one after restart). */
  readonly pid: number;
  /** Kills redis-server (its data is lost: persistence is off). */
  kill(): Promise<void>;
  /** Starts an empty redis-server again on the same port, with the same arguments. */
  restart(): Promise<void>;
}

const running = new Set<TestRedis>();
let cleanupInstalled = false;

export async function startRedis(kind = process.env.CHATLINE_TEST_REDIS): Promise<TestRedis> {
  installCleanup();
  if (kind === 'process') return startRedisProcess();
  if (kind === 'docker' || (kind === undefined && (await dockerAnswers()))) return startRedisContainer();
  if (!redisServerInstalled()) {
    throw new Error('These tests need a real Redis: start a Docker engine (see ../shared/docker/local-images.sh) '
      + 'or install redis-server (apt-get install -y redis-server).');
  }
  return startRedisProcess();
}

export interface RedisProcessOptions {
  /**
   * More redis-server arguments, after the defaults (127.0.0.1, a free port, no persistence),
   * so a setting given here wins: `['--maxmemory', '10mb']`,
   * `['--client-output-buffer-limit', 'pubsub', '64kb', '32kb', '1']`,
   * `['--enable-debug-command', 'yes']` (Redis 7 refuses DEBUG without it; see sleepRedis).
   */
  args?: string[];
  /** Sets requirepass; url and client carry it. A `--requirepass` in args does the same. */
  password?: string;
}

export function startRedisProcess(options: RedisProcessOptions = {}): Promise<ProcessRedis> {
  return onFreshPorts(() => startRedisProcessOnce(options));
}

async function startRedisProcessOnce(options: RedisProcessOptions): Promise<ProcessRedis> {
  installCleanup();
  requireRedisServer();
  const port = await freePort();
  const password = options.password ?? argumentAfter(options.args ?? [], '--requirepass');
  const args = [
    '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--daemonize', 'no',
    ...(password === undefined ? [] : ['--requirepass', password]),
    ...(options.args ?? []),
  ];
  let server = await spawnRedisServer(args);
  const url = password === undefined
    ? `redis://127.0.0.1:${port}`
    : `redis://:${encodeURIComponent(password)}@127.0.0.1:${port}`;
  let client: Redis;
  try {
    client = await assertionClient(url);
  } catch (error) {
    await server.kill();
    throw error;
  }
  const redis: ProcessRedis = {
    url,
    kind: 'process',
    port,
    client,
    get pid() {
      return server.pid;
    },
    async kill() {
      await server.kill();
    },
    async restart() {
      await server.kill();
      server = await spawnRedisServer(args);
    },
    async stop() {
      running.delete(redis);
      client.disconnect();
      await server.kill();
    },
  };
  running.add(redis);
  return redis;
}

function argumentAfter(args: string[], name: string): string | undefined {
  const index = args.lastIndexOf(name);
  return index === -1 ? undefined : args[index + 1];
}

/**
 * Puts Redis to sleep for `seconds` with DEBUG SLEEP (Redis 7 needs `--enable-debug-command yes`),
 * sent on a connection of its own so the test's clients stay free to observe. Resolves once
 * Redis is asleep: a PING on a third connection went 100 ms without an answer. `awake`
 * resolves when Redis answers the DEBUG SLEEP, that is, when it is serving again.
 */
export async function sleepRedis(url: string, seconds: number): Promise<{ awake: Promise<void> }> {
  const connection = (name: string) => new Redis(url, {
    connectionName: `chatline-test:${name}`, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null,
  });
  const sleeper = connection('sleeper');
  const prober = connection('sleep-prober');
  for (const client of [sleeper, prober]) client.on('error', () => {});
  try {
    await Promise.all([sleeper.connect(), prober.connect()]);
    let refused: Error | undefined;
    let answered = false;
    const awake = sleeper.call('DEBUG', 'SLEEP', String(seconds)).then(
      () => { answered = true; },
      (error: Error) => { refused = error; },
    ).finally(() => sleeper.disconnect());
    for (;;) {
      const ping = prober.ping().catch(() => 'closed');
      const reply = await Promise.race([ping, sleep(100).then(() => 'silent')]);
      if (refused) {
        throw new Error(`DEBUG SLEEP refused: ${refused.message} (start Redis with args ['--enable-debug-command', 'yes'])`);
      }
      if (reply === 'silent' || answered) return { awake };
      await sleep(5);
    }
  } finally {
    prober.disconnect();
  }
}

async function startRedisContainer(): Promise<TestRedis> {
  // The Ryuk reaper image cannot be pulled here; we stop our own containers instead.
  process.env.TESTCONTAINERS_RYUK_DISABLED = 'true';
  const { RedisContainer } = await import('@testcontainers/redis');
  const container = await new RedisContainer('redis:7').start();
  const url = container.getConnectionUrl();
  const client = await assertionClient(url);
  const redis: TestRedis = {
    url,
    kind: 'docker',
    client,
    async stop() {
      running.delete(redis);
      client.disconnect();
      await container.stop();
    },
  };
  running.add(redis);
  return redis;
}

/** The plain client tests read Redis with; it reconnects by itself when a test restarts Redis. */
async function assertionClient(url: string): Promise<Redis> {
  const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  client.on('error', () => {});
  await client.connect();
  return client;
}

async function dockerAnswers(): Promise<boolean> {
  const result = spawnSync('docker', ['info', '--format', '{{.ServerVersion}}'], { timeout: 10_000, encoding: 'utf8' });
  return result.status === 0 && result.stdout.trim() !== '';
}

function installCleanup(): void {
  if (cleanupInstalled) return;
  cleanupInstalled = true;
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      void Promise.allSettled([...running].map((redis) => redis.stop())).then(() => process.exit(130));
    });
  }
}

/**
 * Keys under a prefix that hold chat state (users, rooms, sessions), leaving out what running
 * workers keep about themselves (their heartbeat and the worker registry). After every client
 * is gone this must be empty: anything left is a ghost.
 */
export async function chatStateKeys(client: Redis, prefix: string): Promise<string[]> {
  const keys = await client.keys(`${prefix}*`);
  return keys.filter((key) => key !== `${prefix}workers` && !/^.*\{worker:[^}]+\}:alive$/.test(key)).sort();
}
