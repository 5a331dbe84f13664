import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ConfigError, describeRedis, loadConfig } from '../../src/config.js';

// The environment is read once; every mistake is one line that names the variable to fix.

const refuses = (env: Record<string, string>, message: RegExp) =>
  assert.throws(() => loadConfig(env), (error: unknown) => error instanceof ConfigError && message.test(error.message));

describe('configuration', () => {
  it('runs embedded with no Redis variable, and treats an empty one as unset', () => {
    assert.equal(loadConfig({}).redis, undefined);
    assert.equal(loadConfig({ REDIS_URL: '' }).redis, undefined);
  });

  it('refuses HEALTH_PORT or TLS_PORT equal to PORT, naming both', () => {
    refuses({ PORT: '9000', HEALTH_PORT: '9000' }, /^HEALTH_PORT=9000 must differ from PORT/);
    refuses({ PORT: '9000', TLS_PORT: '9000', TLS_CERT_FILE: 'c', TLS_KEY_FILE: 'k' }, /^TLS_PORT=9000 must differ from PORT/);
    // Port 0 means "any free port", so two zeros never collide.
    assert.equal(loadConfig({ PORT: '0', HEALTH_PORT: '0' }).port, 0);
  });

  it('wants TLS_PORT, TLS_CERT_FILE and TLS_KEY_FILE together', () => {
    refuses({ TLS_PORT: '8443' }, /TLS_PORT set without TLS_CERT_FILE and TLS_KEY_FILE/);
    assert.deepEqual(loadConfig({ TLS_PORT: '8443', TLS_CERT_FILE: 'c.pem', TLS_KEY_FILE: 'k.pem' }).tls,
      { port: 8443, certFile: 'c.pem', keyFile: 'k.pem' });
  });

  it('takes exactly one Redis topology', () => {
    refuses({ REDIS_URL: 'redis://a:6379', REDIS_CLUSTER_NODES: 'a:7000' }, /REDIS_URL and REDIS_CLUSTER_NODES are both set/);
    refuses({ REDIS_SENTINELS: 'a:26379' }, /REDIS_SENTINELS and REDIS_SENTINEL_NAME go together/);
    refuses({ REDIS_CLUSTER_NODES: 'a:7000,b' }, /^REDIS_CLUSTER_NODES=.* comma-separated list of host:port/);
    refuses({ REDIS_PASSWORD_FILE: '/x' }, /REDIS_PASSWORD_FILE is set, but no Redis is/);
    refuses({ REDIS_URL: 'redis://a:6379', REDIS_SENTINEL_PASSWORD_FILE: '/x' }, /REDIS_SENTINEL_PASSWORD_FILE is set without REDIS_SENTINELS/);
    const cluster = loadConfig({ REDIS_CLUSTER_NODES: 'a:7000, [::1]:7001' }).redis!;
    assert.deepEqual(cluster.topology, { kind: 'cluster', nodes: [{ host: 'a', port: 7000 }, { host: '::1', port: 7001 }] });
    const sentinel = loadConfig({ REDIS_SENTINELS: 's1:26379,s2:26379', REDIS_SENTINEL_NAME: 'chat' }).redis!;
    assert.equal(sentinel.topology.kind, 'sentinel');
    assert.equal(describeRedis(sentinel), 'REDIS_SENTINELS=s1:26379,s2:26379 REDIS_SENTINEL_NAME=chat');
  });

  it('reads credentials from the URL or a file, and never shows the password', () => {
    const fromUrl = loadConfig({ REDIS_URL: 'redis://chat:s%40cret@redis:6379' }).redis!;
    assert.equal(fromUrl.username, 'chat');
    assert.equal(fromUrl.password, 's@cret');
    assert.equal(describeRedis(fromUrl), 'REDIS_URL=redis://chat:***@redis:6379');
    const dir = mkdtempSync(join(tmpdir(), 'chatline-config-'));
    writeFileSync(join(dir, 'password'), 'from-a-secret\n');
    const fromFile = loadConfig({ REDIS_URL: 'redis://redis:6379', REDIS_PASSWORD_FILE: join(dir, 'password') }).redis!;
    assert.equal(fromFile.password, 'from-a-secret');
    refuses({ REDIS_URL: 'redis://:x@redis:6379', REDIS_PASSWORD_FILE: join(dir, 'password') }, /keep one/);
    refuses({ REDIS_URL: 'redis://redis:6379', REDIS_PASSWORD_FILE: join(dir, 'missing') }, /^REDIS_PASSWORD_FILE=".*missing" cannot be read: ENOENT/);
  });

  it('keeps the worker-wide output cap at least the per-client one, and the watchdog at NODE_TTL_MS unless set', () => {
    refuses({ MAX_PENDING_BYTES: '4096', MAX_WORKER_PENDING_BYTES: '2048' }, /MAX_WORKER_PENDING_BYTES=2048 must be at least MAX_PENDING_BYTES/);
    assert.equal(loadConfig({ NODE_TTL_MS: '4000' }).watchdogMs, 4000);
    assert.equal(loadConfig({ NODE_TTL_MS: '4000', WATCHDOG_MS: '9000' }).watchdogMs, 9000);
    refuses({ PROXY_PROTOCOL: 'yes' }, /^PROXY_PROTOCOL="yes" must be true or false/);
  });
});
