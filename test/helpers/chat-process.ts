import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { freePort } from './ports.js';
import { waitFor } from './wait.js';

// A real chatline instance (`node src/main.ts`) in a child process, as a user starts it.

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** How chatline is started: from source through tsx, as `npm start` does, unless told otherwise. */
let entry = ['--import', 'tsx', 'src/main.ts'];

/**
 * Starts chatline from the compiled build (`npm run build`), as the image runs it: the bench
 * measures what ships. tsx's transform adds work to every closure a hot path makes (it keeps
 * function names by setting each one's `name`), which the build does not have.
 */
export function useCompiledBuild(): void {
  entry = ['dist/main.js'];
}

// Whatever happens to a test, no chatline it started outlives the test process.
const started = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of started) child.kill('SIGKILL');
});

export interface LogLine {
  msg: string;
  [field: string]: unknown;
}

export class ChatProcess {
  readonly logs: LogLine[] = [];
  stderr = '';
  /** Settles once the process exited and its output (shared with its workers) is all read. */
  private readonly closed: Promise<unknown>;

  private constructor(readonly child: ChildProcess, readonly port: number, readonly healthPort: number) {
    this.closed = once(child, 'close');
  }

  /**
   * Two instances of `workers` workers each with the same environment: the smallest cluster.
   * If one fails to start, the other is stopped before the error is thrown.
   */
  static async startPair(env: Record<string, string>, workers = 2): Promise<[ChatProcess, ChatProcess]> {
    const starts = await Promise.allSettled([ChatProcess.start(env, workers), ChatProcess.start(env, workers)]);
    const failure = starts.find((start) => start.status === 'rejected');
    if (failure) {
      await Promise.all(starts.map((start) => (start.status === 'fulfilled' ? start.value.stop() : undefined)));
      throw failure.reason;
    }
    return starts.map((start) => (start as PromiseFulfilledResult<ChatProcess>).value) as [ChatProcess, ChatProcess];
  }

  get pid(): number {
    return this.child.pid!;
  }

  /**
   * Starts an instance and waits until every worker listens. Without REDIS_URL in env it is
   * embedded (one process); with it, `workers` processes.
   */
  static async start(env: Record<string, string> = {}, workers = 1): Promise<ChatProcess> {
    const chat = await ChatProcess.spawn(env, workers);
    try {
      await waitFor(`${workers} worker(s) listening on ${chat.port}`, () => {
        if (chat.child.exitCode !== null) throw new Error(`chatline exited with ${chat.child.exitCode}:\n${chat.stderr}`);
        return chat.logs.filter((line) => line.msg === 'listening').length >= workers;
      }, 30_000);
    } catch (error) {
      await chat.stop('SIGKILL');
      throw error;
    }
    return chat;
  }

  /** Starts an instance that is not expected to serve yet (its Redis refuses it): returns once it runs. */
  static async startUnready(env: Record<string, string> = {}, workers = 1): Promise<ChatProcess> {
    const chat = await ChatProcess.spawn(env, workers);
    try {
      await waitFor('chatline to log', () => {
        if (chat.child.exitCode !== null) throw new Error(`chatline exited with ${chat.child.exitCode}:\n${chat.stderr}`);
        return chat.logs.length > 0;
      }, 30_000);
    } catch (error) {
      await chat.stop('SIGKILL');
      throw error;
    }
    return chat;
  }

  /** Starts an instance without waiting for anything: for tests of how it starts (or does not). */
  static async spawn(env: Record<string, string> = {}, workers = 1): Promise<ChatProcess> {
    const port = env.PORT ? Number(env.PORT) : await freePort();
    const healthPort = env.HEALTH_PORT ? Number(env.HEALTH_PORT) : await freePort();
    const child = spawn(process.execPath, entry, {
      cwd: ROOT,
      env: {
        ...process.env, HOST: '127.0.0.1', LOG_LEVEL: 'info', WORKERS: String(workers),
        ...env, PORT: String(port), HEALTH_PORT: String(healthPort),
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    started.add(child);
    child.once('exit', () => started.delete(child));
    const chat = new ChatProcess(child, port, healthPort);
    chat.collectOutput();
    return chat;
  }

  /**
   * Resolves with the exit code once the process exits by itself and its output is all read
   * (its workers share the pipe); kills it after `timeoutMs`.
   */
  async exited(timeoutMs = 15_000): Promise<number | null> {
    const timer = setTimeout(() => this.child.kill('SIGKILL'), timeoutMs);
    await this.closed;
    clearTimeout(timer);
    return this.child.exitCode;
  }

  /** GET a health path on this instance; returns the status and the JSON body. */
  async probe(path: '/healthz' | '/readyz'): Promise<{ status: number; body: Record<string, unknown> }> {
    const response = await fetch(`http://127.0.0.1:${this.healthPort}${path}`);
    return { status: response.status, body: await response.json() as Record<string, unknown> };
  }

  /** Sends a signal and waits for the process to exit; returns its exit code. */
  async stop(signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 15_000): Promise<number | null> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return this.child.exitCode;
    const exited = once(this.child, 'exit');
    this.child.kill(signal);
    const timer = setTimeout(() => this.child.kill('SIGKILL'), timeoutMs);
    const [code] = await exited;
    clearTimeout(timer);
    return code as number | null;
  }

  /** Pids of the workers serving now (Redis mode): those that listen, less those that exited. */
  get workerPids(): number[] {
    const exited = new Set(this.logs.filter((line) => line.msg === 'a worker exited; starting another').map((line) => line.workerPid as number));
    return [...new Set(this.logs.filter((line) => line.msg === 'listening').map((line) => line.pid as number))]
      .filter((pid) => !exited.has(pid) && pid !== this.pid);
  }

  /** The worker ids of log lines with this message. */
  workersThatLogged(msg: string): Set<string> {
    return new Set(this.logs.filter((line) => line.msg === msg).map((line) => String(line.worker)));
  }

  private collectOutput(): void {
    let partial = '';
    this.child.stdout!.setEncoding('utf8');
    this.child.stdout!.on('data', (text: string) => {
      const parts = (partial + text).split('\n');
      partial = parts.pop()!;
      for (const part of parts) {
        if (part.trim() !== '') this.logs.push(JSON.parse(part) as LogLine);
      }
    });
    this.child.stderr!.setEncoding('utf8');
    this.child.stderr!.on('data', (text: string) => { this.stderr += text; });
  }
}

/** Runs chatline to completion with this environment; for configuration errors. */
export async function runChatToExit(env: Record<string, string>): Promise<{ code: number | null; stderr: string }> {
  const child = spawn(process.execPath, entry, {
    cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (text: string) => { stderr += text; });
  // A run that does not stop by itself is a failure of the test, not a hang of the suite.
  const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
  const [code] = await once(child, 'exit');
  clearTimeout(timer);
  return { code: code as number | null, stderr };
}
