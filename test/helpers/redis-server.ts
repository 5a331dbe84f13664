import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis, type RedisOptions } from 'ioredis';
import { waitFor } from './wait.js';

// Spawns redis-server processes (plain, cluster nodes, sentinels) and makes sure none outlives
// the test process: they are SIGKILLed on exit, and on SIGINT/SIGTERM when nothing else
// handles the signal (redis.ts' handler, when loaded, stops its Redis and exits, which runs
// the exit hook). Their temp dirs (node configs, sentinel configs) go at exit too.

const spawned = new Set<ChildProcess>();
const tempDirs = new Set<string>();
process.once('exit', () => {
  killAll();
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    killAll();
    // We were the only listener: die of the signal, as without one.
    if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
  });
}

function killAll(): void {
  for (const child of spawned) child.kill('SIGKILL');
}

/** A fresh directory under the system's temp dir for node configs and files, removed at exit if not before. */
export function makeTempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  tempDirs.add(dir);
  return dir;
}

/** Removes a directory from makeTempDir now. */
export function removeTempDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
  tempDirs.delete(dir);
}

export function redisServerInstalled(): boolean {
  return spawnSync('redis-server', ['--version']).status === 0;
}

export function requireRedisServer(): void {
  if (!redisServerInstalled()) {
    throw new Error('redis-server is not installed: apt-get install -y redis-server (it brings redis-cli too)');
  }
}

/** A line each kind of redis-server logs once it accepts connections. */
const READY = /Ready to accept connections|Sentinel ID is/;
/** Output kept for error messages. */
const KEPT_OUTPUT = 16 * 1024;

export interface RedisServerProcess {
  readonly child: ChildProcess;
  readonly pid: number;
  /** The last 16 KiB the server logged, for error messages. */
  output(): string;
  /** True once the process has exited (or was killed). */
  readonly exited: boolean;
  /** SIGKILL, waiting for the exit; nothing when it already exited. */
  kill(): Promise<void>;
}

/**
 * Starts `redis-server ...args` and waits until it accepts connections; the arguments decide
 * what it is (pass a config file first for a sentinel). Logs go to stdout, which we keep a tail of.
 */
export async function spawnRedisServer(args: string[], timeoutMs = 10_000): Promise<RedisServerProcess> {
  requireRedisServer();
  const child = spawn('redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  spawned.add(child);
  child.once('exit', () => spawned.delete(child));
  let output = '';
  const keep = (text: string) => { output = (output + text).slice(-KEPT_OUTPUT); };
  child.stdout!.setEncoding('utf8');
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', keep);
  const server: RedisServerProcess = {
    child,
    pid: child.pid!,
    output: () => output,
    get exited() {
      return child.exitCode !== null || child.signalCode !== null;
    },
    async kill() {
      if (server.exited) return;
      const exited = once(child, 'exit');
      child.kill('SIGKILL');
      await exited;
    },
  };
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`redis-server ${args.join(' ')} did not start within ${timeoutMs} ms:\n${output}`)), timeoutMs);
      child.stdout!.on('data', (text: string) => {
        keep(text);
        if (READY.test(output)) {
          clearTimeout(timer);
          resolve();
        }
      });
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`redis-server ${args.join(' ')} exited with ${code ?? signal}:\n${output}`));
      });
    });
  } catch (error) {
    await server.kill();
    throw error;
  }
  return server;
}

/**
 * One redis-server on a fixed port of 127.0.0.1 that a helper kills and starts again (a
 * Cluster node, a Sentinel's primary or replica, a sentinel), with the helper's own
 * connection to it for questions: it fails fast while the server is down and reconnects by
 * itself once it is back.
 */
export class RedisNode {
  server: RedisServerProcess | undefined;
  readonly admin: Redis;

  constructor(readonly port: number, public args: string[], adminOptions: RedisOptions = {}) {
    this.admin = new Redis(port, '127.0.0.1', {
      connectionName: 'chatline-test:admin', lazyConnect: true, enableOfflineQueue: false,
      maxRetriesPerRequest: 0, commandTimeout: 2000, retryStrategy: () => 100, ...adminOptions,
    });
    this.admin.on('error', () => {});
  }

  /** host:port, as REDIS_CLUSTER_NODES and REDIS_SENTINELS list them. */
  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  get alive(): boolean {
    return this.server !== undefined && !this.server.exited;
  }

  /** The running process' id; undefined while the node is down. */
  get pid(): number | undefined {
    return this.alive ? this.server!.pid : undefined;
  }

  /** Starts redis-server with args and waits until the admin connection is ready. */
  async start(): Promise<void> {
    this.server = await spawnRedisServer(this.args);
    if (this.admin.status === 'wait') await this.admin.connect();
    await waitFor(`the admin connection to ${this.address}`, () => this.admin.status === 'ready', 5000);
  }

  /** SIGKILL, waiting for the exit. */
  async kill(): Promise<void> {
    await this.server?.kill();
  }

  /** Kills the server and closes the admin connection. */
  async stop(): Promise<void> {
    this.admin.disconnect();
    await this.kill();
  }

  toString(): string {
    return this.address;
  }
}

/**
 * Starts something on ports picked a moment earlier, again on new ones if another process took
 * one meanwhile (free ports are only free when asked; a busy machine runs other tests too).
 */
export async function onFreshPorts<T>(start: () => Promise<T>, attempts = 3): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await start();
    } catch (error) {
      if (attempt >= attempts || !/Address already in use/.test(String((error as Error).message))) throw error;
    }
  }
}
