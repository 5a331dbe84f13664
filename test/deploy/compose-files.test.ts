import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import { loadConfig } from '../../src/config.js';

// docker-compose.redis-cluster.yml repeats docker-compose.yml's load balancer, chat replicas and
// Prometheus (it stands alone: an override cannot remove the single Redis, see its header).
// Offline checks that the two stay one stack apart from where Redis is, and that every cluster
// node runs with the main file's Redis settings. test/e2e/compose-redis-cluster.test.ts runs it.

const ROOT = new URL('../../', import.meta.url);
const read = (file: string) => parse(readFileSync(new URL(file, ROOT), 'utf8'));
const main = read('docker-compose.yml');
const cluster = read('docker-compose.redis-cluster.yml');

const NODE_SERVICES = Object.keys(cluster.services).filter((name) => /^redis-node-\d+$/.test(name));

/** `${NAME:-default}` → default: the environment compose gives when no variable is set. */
const withDefaults = (env: Record<string, string>) =>
  Object.fromEntries(Object.entries(env).map(([name, value]) => [name, String(value).replace(/\$\{\w+:-([^}]*)\}/g, '$1')]));

/** A service without the keys that say where Redis is. */
function withoutRedis(service: any): any {
  const { environment, depends_on: _dependsOn, ...rest } = structuredClone(service);
  const { REDIS_URL: _url, REDIS_CLUSTER_NODES: _nodes, ...env } = environment;
  return { ...rest, environment: env };
}

describe('docker-compose.redis-cluster.yml beside docker-compose.yml', () => {
  it('runs the same load balancer, Prometheus and password secret', () => {
    assert.deepEqual(cluster.services.lb, main.services.lb);
    assert.deepEqual(cluster.services.prometheus, main.services.prometheus);
    assert.deepEqual(cluster.secrets, main.secrets);
    assert.equal(cluster.services.redis, undefined, 'no single Redis');
  });

  it('runs the same chat replicas, only on REDIS_CLUSTER_NODES instead of REDIS_URL', () => {
    assert.deepEqual(withoutRedis(cluster.services.chat), withoutRedis(main.services.chat));
    const env = cluster.services.chat.environment;
    assert.equal(env.REDIS_URL, undefined);
    assert.deepEqual(cluster.services.chat.depends_on, {
      'redis-cluster-init': { condition: 'service_completed_successfully' },
      lb: { condition: 'service_started' },
    });
    // What the replicas would make of it: Redis mode on a cluster of every node, with the password.
    const dir = mkdtempSync(join(tmpdir(), 'chatline-compose-'));
    try {
      writeFileSync(join(dir, 'password'), 'stand-in\n');
      const config = loadConfig({ ...withDefaults(env), REDIS_PASSWORD_FILE: join(dir, 'password') });
      assert.deepEqual(config.redis?.topology, { kind: 'cluster', nodes: NODE_SERVICES.map((host) => ({ host, port: 6379 })) });
      assert.equal(config.redis?.password, 'stand-in');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('runs six cluster nodes with the main file\'s Redis settings, plus cluster mode and masterauth', () => {
    assert.equal(NODE_SERVICES.length, 6);
    const redis = main.services.redis;
    const [shell, flag, script] = redis.command as string[];
    for (const name of NODE_SERVICES) {
      const node = cluster.services[name];
      for (const key of ['image', 'restart', 'user', 'secrets', 'healthcheck', 'depends_on']) {
        assert.deepEqual(node[key], redis[key], `${name}: ${key} as docker-compose.yml's redis`);
      }
      const [nodeShell, nodeFlag, nodeScript] = node.command as string[];
      assert.deepEqual([nodeShell, nodeFlag], [shell, flag]);
      assert.ok(nodeScript!.startsWith(script!), `${name}: the main Redis command line, then cluster flags:\n${nodeScript}`);
      const extra = nodeScript!.slice(script!.length);
      assert.match(extra, /--cluster-enabled yes/);
      assert.match(extra, /--masterauth "\$\$password"/);
    }
  });

  it('forms the cluster with a one-shot that never restarts and waits for every node', () => {
    const init = cluster.services['redis-cluster-init'];
    assert.equal(init.restart, 'no');
    assert.deepEqual(init.depends_on, Object.fromEntries(NODE_SERVICES.map((name) => [name, { condition: 'service_healthy' }])));
    assert.deepEqual(init.environment.NODES.split(' '), NODE_SERVICES);
    assert.match(init.command.at(-1), /redis-cli --cluster create \$\$addresses --cluster-replicas 1 --cluster-yes/);
  });
});
