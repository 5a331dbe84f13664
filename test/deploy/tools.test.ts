import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { parse, parseAllDocuments } from 'yaml';
import { requireDockerEngine } from '../helpers/compose.js';
import { waitFor } from '../helpers/wait.js';

// The deploy files, checked by the real tools in the images compose runs: promtool (config,
// rules, rule unit tests), haproxy -c, and redis-server started with the exact command lines
// compose and Kubernetes give it. Needs a Docker engine, and fails (never skips) without one.

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const PROMETHEUS_IMAGE = 'prom/prometheus:v2.42.0';

async function docker(...args: string[]): Promise<string> {
  const { stdout, stderr } = await run('docker', args, { maxBuffer: 16 * 1024 * 1024, timeout: 120_000 });
  return stdout + stderr;
}

const promtool = (...args: string[]) =>
  docker('run', '--rm', '-v', `${ROOT}deploy/prometheus:/work:ro`, '-w', '/work', '--entrypoint', '/bin/promtool', PROMETHEUS_IMAGE, ...args);

describe('deploy files, checked by the tools that run them (Docker)', () => {
  before(() => requireDockerEngine());

  it('promtool: the Prometheus config and its rules are valid', async () => {
    const output = await promtool('check', 'config', 'prometheus.yml');
    assert.match(output, /SUCCESS: prometheus\.yml is valid/);
    assert.match(await promtool('check', 'rules', 'alerts.yml'), /SUCCESS: \d+ rules found/);
  });

  it('promtool: every alert fires in its unit test (alerts.test.yml)', async () => {
    const output = await promtool('test', 'rules', 'alerts.test.yml');
    assert.match(output, /SUCCESS/);
    const tested = new Set([...readFileSync(`${ROOT}deploy/prometheus/alerts.test.yml`, 'utf8').matchAll(/alertname: (\w+)\n\s+exp_alerts:\n\s+- exp_labels/g)].map((m) => m[1]));
    const alerts = parse(readFileSync(`${ROOT}deploy/prometheus/alerts.yml`, 'utf8')).groups.flatMap((g: any) => g.rules.map((r: any) => r.alert));
    assert.deepEqual(alerts.filter((name: string) => !tested.has(name)), [], 'alerts no unit test sees firing');
  });

  it('promtool: a broken rule fails (the check really checks)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'chatline-rules-'));
    try {
      writeFileSync(join(dir, 'bad.yml'), 'groups:\n  - name: x\n    rules:\n      - alert: X\n        expr: sum(rate(x[5m])\n');
      await assert.rejects(docker('run', '--rm', '-v', `${dir}:/work:ro`, '--entrypoint', '/bin/promtool', PROMETHEUS_IMAGE, 'check', 'rules', '/work/bad.yml'));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('haproxy -c: the compose load balancer config is valid, with and without PROXY protocol', async () => {
    for (const proxyProtocol of ['true', 'false']) {
      const output = await docker('run', '--rm', '-e', `PROXY_PROTOCOL=${proxyProtocol}`,
        '-v', `${ROOT}deploy/haproxy/haproxy.cfg:/usr/local/etc/haproxy/haproxy.cfg:ro`,
        'haproxy:2.6', 'haproxy', '-c', '-f', '/usr/local/etc/haproxy/haproxy.cfg');
      assert.match(output, /Configuration file is valid/);
      assert.doesNotMatch(output, /WARNING/, output);
    }
  });

  describe('redis-server, started with the command lines compose and Kubernetes give it', () => {
    const PASSWORD = 'pw-with-$pecial "chars"';
    let dir: string;
    const containers: string[] = [];

    before(() => {
      dir = mkdtempSync(join(tmpdir(), 'chatline-redis-'));
      // With a trailing newline, as editors and `kubectl create secret --from-file` leave it.
      writeFileSync(join(dir, 'password'), `${PASSWORD}\n`);
    });

    after(async () => {
      for (const id of containers) await docker('rm', '-f', id).catch(() => {});
      rmSync(dir, { recursive: true, force: true });
    });

    /** Starts redis:7 with this shell script, the password file mounted where the script reads it. */
    async function startRedis(script: string, passwordPath: string, user: string): Promise<string> {
      const id = (await docker('run', '-d', '--user', user, '-v', `${dir}/password:${passwordPath}:ro`, 'redis:7', 'sh', '-c', script)).trim();
      containers.push(id);
      return id;
    }

    const cli = (id: string, ...args: string[]) =>
      docker('exec', '-e', `REDISCLI_AUTH=${PASSWORD}`, id, 'redis-cli', '--no-auth-warning', ...args);

    async function checkSettings(id: string): Promise<void> {
      await waitFor('redis to answer', async () => (await cli(id, 'ping').catch(() => '')).includes('PONG'), 20_000);
      assert.match(await docker('exec', id, 'redis-cli', 'ping'), /NOAUTH/, 'refuses a client without the password');
      assert.match(await cli(id, 'config', 'get', 'maxmemory-policy'), /noeviction/);
      assert.match(await cli(id, 'config', 'get', 'protected-mode'), /yes/);
      assert.doesNotMatch(await cli(id, 'config', 'get', 'maxmemory'), /^maxmemory\n0$/m);
      const limits = await cli(id, 'config', 'get', 'client-output-buffer-limit');
      const pubsub = /pubsub (\d+) (\d+) (\d+)/.exec(limits);
      assert.ok(pubsub, limits);
      const [hard, soft, seconds] = pubsub.slice(1).map(Number) as [number, number, number];
      assert.ok(hard >= 64 * 2 ** 20 && soft >= 16 * 2 ** 20 && seconds >= 60, `pubsub ${hard} ${soft} ${seconds}`);
      assert.match(await cli(id, 'config', 'get', 'save'), /^save\n$/m, 'no snapshots');
    }

    it('compose: the redis service\'s command', async () => {
      const compose = parse(readFileSync(`${ROOT}docker-compose.yml`, 'utf8'));
      const [shell, flag, script] = compose.services.redis.command as string[];
      assert.deepEqual([shell, flag], ['sh', '-c']);
      // Compose turns $$ into $ before the shell sees it.
      const id = await startRedis(script!.replaceAll('$$', '$'), '/run/secrets/redis_password', compose.services.redis.user);
      await checkSettings(id);
    });

    it('Kubernetes: the redis Deployment\'s command', async () => {
      const manifests = readFileSync(`${ROOT}deploy/k8s/components/redis/redis.yaml`, 'utf8');
      const deployment = parseAllDocuments(manifests).map((d) => d.toJS()).find((m: any) => m.kind === 'Deployment');
      const container = deployment.spec.template.spec.containers[0];
      assert.deepEqual(container.command, ['sh', '-c']);
      const mount = container.volumeMounts.find((m: any) => m.name === 'redis-auth').mountPath;
      const user = `${deployment.spec.template.spec.securityContext.runAsUser}:${deployment.spec.template.spec.securityContext.runAsGroup}`;
      const id = await startRedis(container.args[0], `${mount}/password`, user);
      await checkSettings(id);
      // Its readiness probe, too.
      const probe = container.readinessProbe.exec.command as string[];
      await docker('exec', id, ...probe);
    });
  });
});
