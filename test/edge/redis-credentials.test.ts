import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { TestCertificates } from '../helpers/certs.js';
import { ChatProcess } from '../helpers/chat-process.js';
import { loggedIn } from '../helpers/client.js';
import { freePort } from '../helpers/ports.js';
import { waitFor } from '../helpers/wait.js';

// Redis with a password, an ACL user, TLS, and as Sentinel and Cluster: chatline reaches each
// with the credentials from a file or the URL, and no password ever shows in its output.

const servers = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of servers) child.kill('SIGKILL');
});

/** A redis-server (or redis-sentinel) with these arguments, once it accepts connections. */
async function spawnRedis(args: string[], command = 'redis-server'): Promise<ChildProcess> {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  servers.add(child);
  child.once('exit', () => servers.delete(child));
  let output = '';
  child.stdout!.setEncoding('utf8');
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${command} did not start:\n${output}`)), 10_000);
    child.stdout!.on('data', (text: string) => {
      output += text;
      if (/Ready to accept connections|Sentinel ID is/.test(output)) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once('exit', (code) => reject(new Error(`${command} exited with ${code}:\n${output}`)));
  });
  child.stdout!.resume();
  return child;
}

async function stopRedis(child: ChildProcess | undefined): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGKILL');
  await exited;
}

const base = (port: number) => ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'];

/** A password with characters a URL must escape. */
const newPassword = () => `pw-${randomBytes(9).toString('hex')}@/:!`;

/** Fails if any password (or its URL-escaped form) appears in what chatline printed. */
function assertNoPasswordIn(chat: ChatProcess, passwords: string[]): void {
  const output = chat.logs.map((line) => JSON.stringify(line)).join('\n') + chat.stderr;
  assert.ok(chat.logs.length > 5, 'chatline logged');
  for (const password of passwords) {
    for (const form of [password, encodeURIComponent(password), password.slice(0, 12)]) {
      assert.ok(!output.includes(form), `a password (${form.slice(0, 6)}…) appears in chatline's output`);
    }
  }
}

async function chatWorks(chat: ChatProcess, tag: string): Promise<void> {
  const [a, b] = await Promise.all([loggedIn(chat.port, `${tag}a`), loggedIn(chat.port, `${tag}b`)]);
  try {
    await a.command(`MSG ${tag}b through redis`, 'OK');
    await b.expect(`GOTUSERMSG ${tag}a through redis`);
  } finally {
    a.destroy();
    b.destroy();
  }
}

describe('Redis credentials', { timeout: 300_000 }, () => {
  const certs = new TestCertificates();
  const file = (name: string, content: string) => {
    const path = join(certs.dir, name);
    writeFileSync(path, `${content}\n`, { mode: 0o600 });
    return path;
  };
  after(() => certs.cleanup());

  describe('a password and an ACL user', () => {
    const defaultPassword = newPassword();
    const chatPassword = newPassword();
    let server: ChildProcess;
    let port: number;
    let admin: Redis;
    before(async () => {
      port = await freePort();
      server = await spawnRedis([...base(port), '--requirepass', defaultPassword,
        '--user', 'chat', 'on', `>${chatPassword}`, '~*', '&*', '+@all']);
      admin = new Redis({ port, host: '127.0.0.1', password: defaultPassword, lazyConnect: true });
      await admin.connect();
    });
    after(async () => {
      admin?.disconnect();
      await stopRedis(server);
    });

    for (const [index, [how, env]] of ([
      ['the default user\'s password in REDIS_PASSWORD_FILE', () => ({
        REDIS_URL: `redis://127.0.0.1:${port}`, REDIS_PASSWORD_FILE: file('default-password', defaultPassword),
      })],
      ['an ACL user and password in the URL', () => ({
        REDIS_URL: `redis://chat:${encodeURIComponent(chatPassword)}@127.0.0.1:${port}`,
      })],
      ['REDIS_USERNAME with the password in a file', () => ({
        REDIS_URL: `redis://127.0.0.1:${port}`, REDIS_USERNAME: 'chat', REDIS_PASSWORD_FILE: file('chat-password', chatPassword),
      })],
    ] as const).entries()) {
      it(`connects with ${how}, and prints no password even at LOG_LEVEL=trace`, async () => {
        const chat = await ChatProcess.start({ ...env(), REDIS_PREFIX: 'creds:', LOG_LEVEL: 'trace' }, 2);
        try {
          await chatWorks(chat, `u${index}`);
          if ('REDIS_USERNAME' in env() || env().REDIS_URL.includes('chat:')) {
            const clients = String(await admin.client('LIST')).split('\n').filter((row) => row.includes('name=chatline:'));
            assert.ok(clients.length >= 4 && clients.every((row) => row.includes(' user=chat ')), clients.join('\n'));
          }
        } finally {
          await chat.stop();
        }
        assertNoPasswordIn(chat, [defaultPassword, chatPassword]);
      });
    }

    it('keeps retrying with one clear line per attempt when the password is wrong, not ready, and serves once Redis takes it', async () => {
      const wrong = newPassword();
      const chat = await ChatProcess.startUnready({
        REDIS_URL: `redis://127.0.0.1:${port}`, REDIS_PASSWORD_FILE: file('wrong-password', wrong), REDIS_PREFIX: 'wrong:', LOG_LEVEL: 'trace',
      }, 1);
      try {
        const refusals = () => chat.logs.filter((line) => line.msg.startsWith('Redis refused our credentials') && line.role === 'commands');
        await waitFor('three refused attempts', () => refusals().length >= 3, 10_000);
        assert.match(refusals()[0]!.msg, /check REDIS_USERNAME and REDIS_PASSWORD_FILE/);
        assert.match(String(refusals()[0]!.err), /WRONGPASS/);
        assert.deepEqual(refusals().slice(0, 3).map((line) => line.attempt), [1, 2, 3]);
        assert.equal(chat.child.exitCode, null, 'the instance keeps running');
        assert.equal((await chat.probe('/readyz')).status, 503);
        // The operator fixes the other side (a rotation finishing): the worker gets in by itself.
        await admin.config('SET', 'requirepass', wrong);
        await waitFor('the worker to listen', () => chat.logs.some((line) => line.msg === 'listening'), 10_000);
        await waitFor('ready', async () => (await chat.probe('/readyz')).status === 200, 10_000);
        await chatWorks(chat, 'w');
        await admin.config('SET', 'requirepass', defaultPassword);
      } finally {
        await chat.stop();
      }
      assertNoPasswordIn(chat, [defaultPassword, chatPassword, wrong]);
    });
  });

  describe('over TLS', () => {
    const password = newPassword();
    let server: ChildProcess;
    let port: number;
    let ca: string;
    before(async () => {
      const pair = certs.signedByCa('redis');
      ca = pair.ca;
      port = await freePort();
      server = await spawnRedis(['--port', '0', '--tls-port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
        '--tls-cert-file', pair.cert, '--tls-key-file', pair.key, '--tls-ca-cert-file', ca, '--tls-auth-clients', 'no',
        '--requirepass', password]);
    });
    after(async () => stopRedis(server));

    it('chats across workers through rediss:// with REDIS_TLS_CA_FILE and the password from a file', async () => {
      const chat = await ChatProcess.start({
        REDIS_URL: `rediss://127.0.0.1:${port}`, REDIS_TLS_CA_FILE: ca, REDIS_PASSWORD_FILE: file('tls-password', password),
        REDIS_PREFIX: 'tls:', LOG_LEVEL: 'trace',
      }, 2);
      try {
        await chatWorks(chat, 't');
        assert.equal((await chat.probe('/readyz')).status, 200);
      } finally {
        await chat.stop();
      }
      assertNoPasswordIn(chat, [password]);
    });

    it('refuses a server certificate it cannot verify (no REDIS_TLS_CA_FILE), saying so each attempt', async () => {
      const chat = await ChatProcess.startUnready({
        REDIS_URL: `rediss://127.0.0.1:${port}`, REDIS_PASSWORD_FILE: file('tls-password', password), REDIS_PREFIX: 'tls:',
      }, 1);
      try {
        await waitFor('two failed attempts', () =>
          chat.logs.filter((line) => line.msg.startsWith('cannot reach Redis') && /certificate/.test(String(line.err))).length >= 2, 10_000);
        assert.equal((await chat.probe('/readyz')).status, 503);
      } finally {
        await chat.stop();
      }
    });
  });

  describe('as Sentinel and as Cluster', () => {
    const password = newPassword();
    const children: ChildProcess[] = [];
    after(async () => { await Promise.all(children.map(stopRedis)); });

    it('passes the password to the primary a sentinel names', async () => {
      const primaryPort = await freePort();
      children.push(await spawnRedis([...base(primaryPort), '--requirepass', password]));
      const sentinelPort = await freePort();
      const config = file('sentinel.conf', [
        `port ${sentinelPort}`, 'bind 127.0.0.1', `dir ${certs.dir}`,
        `sentinel monitor chatprimary 127.0.0.1 ${primaryPort} 1`, `sentinel auth-pass chatprimary ${password}`,
      ].join('\n'));
      children.push(await spawnRedis([config, '--sentinel']));
      const chat = await ChatProcess.start({
        REDIS_SENTINELS: `127.0.0.1:${sentinelPort}`, REDIS_SENTINEL_NAME: 'chatprimary',
        REDIS_PASSWORD_FILE: file('sentinel-password', password), REDIS_PREFIX: 'sentinel:', LOG_LEVEL: 'trace',
      }, 1);
      try {
        await chatWorks(chat, 's');
      } finally {
        await chat.stop();
      }
      assertNoPasswordIn(chat, [password]);
    });

    it('passes the password to every node of a cluster', async () => {
      const nodePort = await freePort();
      // A lone node learns no address of its own from peers: it is told the one to announce.
      children.push(await spawnRedis([...base(nodePort), '--requirepass', password, '--masterauth', password, '--cluster-announce-ip', '127.0.0.1',
        '--cluster-enabled', 'yes', '--cluster-config-file', join(certs.dir, `nodes-${nodePort}.conf`)]));
      // One node owning every slot: the smallest cluster.
      const admin = new Redis({ port: nodePort, host: '127.0.0.1', password, lazyConnect: true });
      await admin.connect();
      await admin.call('CLUSTER', 'ADDSLOTSRANGE', '0', '16383');
      await waitFor('the cluster to be ok', async () => String(await admin.cluster('INFO')).includes('cluster_state:ok'));
      admin.disconnect();
      const chat = await ChatProcess.start({
        REDIS_CLUSTER_NODES: `127.0.0.1:${nodePort}`, REDIS_PASSWORD_FILE: file('cluster-password', password),
        REDIS_PREFIX: 'cluster:', LOG_LEVEL: 'trace',
      }, 1);
      try {
        await chatWorks(chat, 'c');
      } finally {
        await chat.stop();
      }
      assertNoPasswordIn(chat, [password]);
    });
  });
});
