import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { Redis } from 'ioredis';
import { freePort } from './ports.js';

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
  /** Kills redis-server (its data is lost: persistence is off). */
  kill(): Promise<void>;
  /** Starts an empty redis-server again on the same port. */
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

export async function startRedisProcess(): Promise<ProcessRedis> {
  installCleanup();
  if (!redisServerInstalled()) throw new Error('redis-server is not installed: apt-get install -y redis-server');
  const port = await freePort();
  let child = await launch(port);
  const url = `redis://127.0.0.1:${port}`;
  const client = await assertionClient(url);
  const redis: ProcessRedis = {
    url,
    kind: 'process',
    port,
    client,
    async kill() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGKILL');
      await once(child, 'exit');
    },
    async restart() {
      await redis.kill();
      child = await launch(port);
    },
    async stop() {
      running.delete(redis);
      client.disconnect();
      await redis.kill();
    },
  };
  running.add(redis);
  return redis;
}

async function launch(port: number): Promise<ChildProcess> {
  const child = spawn('redis-server', [
    '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--daemonize', 'no',
  ], { stdio: ['ignore', 'pipe', 'inherit'] });
  let output = '';
  child.stdout!.setEncoding('utf8');
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`redis-server did not start:\n${output}`)), 10_000);
    child.stdout!.on('data', (text: string) => {
      output += text;
      if (output.includes('Ready to accept connections')) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`redis-server exited with ${code}:\n${output}`));
    });
  });
  child.stdout!.resume();
  return child;
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

function redisServerInstalled(): boolean {
  return spawnSync('redis-server', ['--version']).status === 0;
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
