import { execFile, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { LineClient } from './client.js';
import { waitFor } from './wait.js';

// Runs this repository's docker-compose.yml (or, with COMPOSE_FILE in its environment, another of
// its compose files) as a throwaway project, as a user would.

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** Compose v2 (`docker compose`) where installed, else v1 (`docker-compose`). */
function composeCommand(): string[] {
  if (spawnSync('docker', ['compose', 'version']).status === 0) return ['docker', 'compose'];
  if (spawnSync('docker-compose', ['version']).status === 0) return ['docker-compose'];
  throw new Error('Neither `docker compose` nor `docker-compose` is installed (../shared/docker/local-images.sh installs one).');
}

/**
 * Connects through HAProxy on `port` and logs in, retrying while no replica is ready yet; the
 * client joins `opened`, for the test to close.
 */
export function loginThroughHaproxy(port: number, user: string, opened: LineClient[], timeoutMs = 60_000): Promise<LineClient> {
  return waitFor(`a replica to accept ${user} through HAProxy`, async () => {
    let client: LineClient | undefined;
    try {
      client = await LineClient.connect(port);
      await client.command(`LOGIN ${user}`, 'OK');
      opened.push(client);
      return client;
    } catch {
      client?.destroy();
      return undefined;
    }
  }, timeoutMs);
}

export function requireDockerEngine(): void {
  const info = spawnSync('docker', ['info', '--format', '{{.ServerVersion}}'], { encoding: 'utf8', timeout: 20_000 });
  if (info.status !== 0) {
    throw new Error('No Docker engine answers: the container tests need one. Run ../shared/docker/local-images.sh '
      + `(it starts dockerd and builds the base images).\n${info.stderr ?? ''}`);
  }
}

export class ComposeProject {
  private readonly command = composeCommand();

  constructor(readonly name: string, private readonly env: Record<string, string>) {}

  async run(...args: string[]): Promise<string> {
    const [file, ...prefix] = this.command;
    const { stdout } = await run(file!, [...prefix, '-p', this.name, ...args], {
      cwd: ROOT,
      env: { ...process.env, ...this.env },
      maxBuffer: 64 * 1024 * 1024,
      timeout: 10 * 60_000,
    });
    return stdout;
  }

  /**
   * deploy/compose/up.sh, as the README tells users to start the stack: `up -d` with these
   * options, then a wait until every container is healthy. Its exit code and what it printed.
   */
  async upAndWait(timeoutSeconds: number, ...args: string[]): Promise<{ code: number; output: string }> {
    try {
      const { stdout, stderr } = await run('deploy/compose/up.sh', args, {
        cwd: ROOT,
        env: { ...process.env, ...this.env, COMPOSE_PROJECT_NAME: this.name, CHAT_UP_TIMEOUT: String(timeoutSeconds) },
        maxBuffer: 64 * 1024 * 1024,
        timeout: (timeoutSeconds + 600) * 1000,
      });
      return { code: 0, output: stdout + stderr };
    } catch (error) {
      const failed = error as { code?: number; stdout?: string; stderr?: string };
      return { code: typeof failed.code === 'number' ? failed.code : -1, output: `${failed.stdout ?? ''}${failed.stderr ?? ''}` };
    }
  }

  /**
   * The whole stack as a user brings it up, with `replicas` chat replicas: built, started
   * through up.sh, and torn down if the test run is interrupted. Returns once HAProxy has seen
   * every replica (one check interval, 2 s with rise 1, after they all report ready): otherwise
   * the first replica up would take everyone.
   */
  async startStack(replicas: number, timeoutSeconds: number): Promise<void> {
    const cleanUp = () => void this.run('down', '-v', '--remove-orphans').finally(() => process.exit(130));
    process.once('SIGINT', cleanUp);
    process.once('SIGTERM', cleanUp);
    await this.run('build', 'chat');
    const up = await this.upAndWait(timeoutSeconds, '--scale', `chat=${replicas}`);
    if (up.code !== 0) throw new Error(`up.sh exited ${up.code}:\n${up.output}`);
    const started = (await this.containers('chat')).length;
    if (started !== replicas) throw new Error(`${started} chat replicas running, ${replicas} asked for`);
    await new Promise((resolve) => setTimeout(resolve, 3000));
  }

  /** Containers of this project that are running now, whatever their service. */
  async running(): Promise<string[]> {
    const { stdout } = await run('docker', ['ps', '-q', '--filter', `label=com.docker.compose.project=${this.name}`]);
    return stdout.split('\n').filter(Boolean);
  }

  /** Container ids of one service. */
  async containers(service: string): Promise<string[]> {
    return (await this.run('ps', '-q', service)).split('\n').filter(Boolean);
  }

  /** Docker's health status of a container (from the image's HEALTHCHECK). */
  async health(container: string): Promise<string> {
    const { stdout } = await run('docker', ['inspect', '-f', '{{.State.Health.Status}}', container]);
    return stdout.trim();
  }

  /** What a command run in a container printed (stdout and stderr). */
  async exec(container: string, ...command: string[]): Promise<string> {
    const { stdout, stderr } = await run('docker', ['exec', container, ...command]);
    return stdout + stderr;
  }

  /** Everything a container wrote to stdout and stderr, as text. */
  async logText(container: string): Promise<string> {
    const { stdout, stderr } = await run('docker', ['logs', container], { maxBuffer: 64 * 1024 * 1024 });
    return stdout + stderr;
  }

  /** Log lines (JSON) a container wrote. */
  async logsOf(container: string): Promise<Record<string, unknown>[]> {
    const { stdout } = await run('docker', ['logs', container], { maxBuffer: 64 * 1024 * 1024 });
    return stdout.split('\n').filter((line) => line.startsWith('{')).map((line) => JSON.parse(line));
  }
}
