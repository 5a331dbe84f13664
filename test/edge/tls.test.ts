import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { copyFileSync, mkdirSync, renameSync, symlinkSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { TestCertificates } from '../helpers/certs.js';
import { ChatProcess } from '../helpers/chat-process.js';
import { LineClient, loggedIn } from '../helpers/client.js';
import { edgeClient, metricValue, runToExit } from '../helpers/edge.js';
import { freePort } from '../helpers/ports.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import { waitFor } from '../helpers/wait.js';

// The TLS listener (TLS_PORT): the same chat, sessions and limits as the plain port, with
// certificates made here by openssl, renewed under live connections.

describe('TLS listener', { timeout: 300_000 }, () => {
  const certs = new TestCertificates();
  after(() => certs.cleanup());

  describe('embedded', () => {
    let chat: ChatProcess;
    let tlsPort: number;
    let ca: string;
    before(async () => {
      const pair = certs.signedByCa('server');
      ca = pair.ca;
      tlsPort = await freePort();
      chat = await ChatProcess.start({ REDIS_URL: '', TLS_PORT: String(tlsPort), TLS_CERT_FILE: pair.cert, TLS_KEY_FILE: pair.key });
    });
    after(async () => { await chat?.stop(); });

    it('says in its listening line that it serves TLS, and on which port', () => {
      const listening = chat.logs.find((line) => line.msg === 'listening')!;
      assert.equal(listening.tlsPort, tlsPort);
    });

    it('lets a TLS client and a plain client chat with each other', async () => {
      const { client: alice } = await edgeClient(tlsPort, { tlsCa: ca });
      const bob = await loggedIn(chat.port, 'bob');
      try {
        await alice.command('LOGIN alice', 'OK');
        await alice.command('JOIN #Secure', 'OK');
        await bob.command('JOIN #secure', 'OK');
        await alice.command('MSG bob over TLS', 'OK');
        await bob.expect('GOTUSERMSG alice over TLS');
        await bob.command('MSG #secure back in clear', 'OK', 'GOTROOMMSG bob #Secure back in clear');
        await alice.expect('GOTROOMMSG bob #Secure back in clear');
        // One name space: the TLS user's name is taken on the plain port too.
        const other = await LineClient.connect(chat.port);
        await other.command('LOGIN ALICE', 'ERROR ALICE IS ALREADY TAKEN');
        other.destroy();
        await alice.command('QUIT', 'OK');
        await alice.closed;
      } finally {
        alice.destroy();
        bob.destroy();
      }
    });

    it('answers openssl s_client, which verifies the certificate', async () => {
      const child = spawn('openssl', ['s_client', '-connect', `127.0.0.1:${tlsPort}`, '-servername', 'localhost', '-CAfile', ca,
        '-verify_return_error', '-quiet'], { stdio: ['pipe', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.setEncoding('utf8').on('data', (text: string) => { stdout += text; });
      child.stderr.setEncoding('utf8').on('data', (text: string) => { stderr += text; });
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      child.stdin.write('PING from openssl\nLOGIN sally\nMSG sally hello me\nQUIT\n');
      const [code] = await once(child, 'exit');
      clearTimeout(timer);
      assert.equal(stdout, 'PONG from openssl\r\nOK\r\nOK\r\nGOTUSERMSG sally hello me\r\nOK\r\n', stderr);
      assert.equal(code, 0, stderr);
      assert.match(stderr, /verify return:1/);
    });

    it('closes a client that does not speak TLS on the TLS port, and counts it as a failed handshake', async () => {
      const before = await metricValue(chat.healthPort, 'chatline_connections_closed_total', 'reason="tls_handshake"');
      const plain = await LineClient.connect(tlsPort);
      plain.send('LOGIN mallory');
      await plain.closed;
      await waitFor('the failed handshake to be counted', async () =>
        await metricValue(chat.healthPort, 'chatline_connections_closed_total', 'reason="tls_handshake"') === before + 1);
    });
  });

  describe('certificate renewal', () => {
    let chat: ChatProcess;
    let tlsPort: number;
    let ca: string;
    let live: string;
    before(async () => {
      // Laid out as a Kubernetes Secret volume: tls.crt -> ..data/tls.crt, ..data -> a dated directory.
      live = join(certs.dir, 'mounted');
      const first = certs.signedByCa('first');
      ca = first.ca;
      const dated = join(live, '..2026_01_01');
      mkdirSync(dated, { recursive: true });
      copyFileSync(first.cert, join(dated, 'tls.crt'));
      copyFileSync(first.key, join(dated, 'tls.key'));
      symlinkSync('..2026_01_01', join(live, '..data'));
      symlinkSync('..data/tls.crt', join(live, 'tls.crt'));
      symlinkSync('..data/tls.key', join(live, 'tls.key'));
      tlsPort = await freePort();
      chat = await ChatProcess.start({
        REDIS_URL: '', TLS_PORT: String(tlsPort), TLS_CERT_FILE: join(live, 'tls.crt'), TLS_KEY_FILE: join(live, 'tls.key'),
      });
    });
    after(async () => { await chat?.stop(); });

    async function expectNewConnectionsGet(fingerprint: string): Promise<void> {
      await waitFor(`new connections to get certificate ${fingerprint}`, async () => {
        const { client, fingerprint: seen } = await edgeClient(tlsPort, { tlsCa: ca });
        client.destroy();
        return seen === fingerprint;
      }, 5000);
    }

    it('serves a renewed certificate to new connections while the old ones keep chatting', async () => {
      const { client: early, fingerprint: earlyPrint } = await edgeClient(tlsPort, { tlsCa: ca });
      await early.command('LOGIN early', 'OK');

      // The Kubernetes way: a new dated directory, and ..data swapped to it in one rename.
      const second = certs.signedByCa('second');
      assert.notEqual(second.fingerprint, earlyPrint);
      const dated = join(live, '..2026_02_01');
      mkdirSync(dated);
      copyFileSync(second.cert, join(dated, 'tls.crt'));
      copyFileSync(second.key, join(dated, 'tls.key'));
      symlinkSync('..2026_02_01', join(live, '..data_tmp'));
      renameSync(join(live, '..data_tmp'), join(live, '..data'));
      await expectNewConnectionsGet(second.fingerprint);
      await early.command('MSG early still here', 'OK', 'GOTUSERMSG early still here');

      // The certbot way, done badly: the certificate replaced first, the key a moment later.
      // The mismatched pair in between is refused; the old certificate serves until both are new.
      const third = certs.signedByCa('third');
      const { client: middle } = await edgeClient(tlsPort, { tlsCa: ca });
      copyFileSync(third.cert, join(dated, 'tls.crt'));
      await waitFor('the mismatched pair to be refused', () =>
        chat.logs.some((line) => /cannot be used \(yet\); keeping the current certificate/.test(line.msg)), 5000);
      const during = await edgeClient(tlsPort, { tlsCa: ca });
      during.client.destroy();
      assert.equal(during.fingerprint, second.fingerprint);
      copyFileSync(third.key, join(dated, 'tls.key'));
      await expectNewConnectionsGet(third.fingerprint);

      await early.command('MSG early through two renewals', 'OK', 'GOTUSERMSG early through two renewals');
      await middle.command('LOGIN middle', 'OK');
      await middle.command('MSG early hi', 'OK');
      await early.expect('GOTUSERMSG middle hi');
      const reloads = chat.logs.filter((line) => line.msg.startsWith('TLS certificate reloaded'));
      assert.deepEqual(reloads.map((line) => line.fingerprint), [second.fingerprint, third.fingerprint]);
      early.destroy();
      middle.destroy();
    });
  });

  describe('in Redis mode', () => {
    let redis: TestRedis;
    before(async () => { redis = await startRedis(); });
    after(async () => redis?.stop());

    it('serves TLS from every worker, and counts TLS and plain clients against one per-address limit', async () => {
      const pair = certs.signedByCa('cluster');
      const tlsPort = await freePort();
      const chat = await ChatProcess.start({
        REDIS_URL: redis.url, REDIS_PREFIX: 'tls:', TLS_PORT: String(tlsPort), TLS_CERT_FILE: pair.cert, TLS_KEY_FILE: pair.key,
        MAX_CONNECTIONS_PER_IP: '4',
      }, 2);
      const clients: LineClient[] = [];
      try {
        for (let i = 0; i < 3; i++) clients.push((await edgeClient(tlsPort, { tlsCa: pair.ca })).client);
        clients.push(await LineClient.connect(chat.port));
        await Promise.all(clients.map((client, i) => client.command(`LOGIN t${i}`, 'OK')));
        await clients[0]!.command('MSG t3 across workers', 'OK');
        await clients[3]!.expect('GOTUSERMSG t0 across workers');
        assert.equal(chat.workersThatLogged('connection opened').size, 2, 'both workers served clients');
        const { client: fifth } = await edgeClient(tlsPort, { tlsCa: pair.ca });
        await fifth.expect('ERROR TOO MANY CONNECTIONS');
        await fifth.closed;
      } finally {
        for (const client of clients) client.destroy();
        assert.equal(await chat.stop(), 0);
      }
    });

    it('stops the instance with one line naming TLS_PORT when that port is taken', async () => {
      const pair = certs.signedByCa('taken');
      const blocker = createServer();
      await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
      const taken = (blocker.address() as { port: number }).port;
      try {
        const { code, logs } = await runToExit({
          REDIS_URL: redis.url, REDIS_PREFIX: 'taken:', WORKERS: '2', PORT: String(await freePort()), HEALTH_PORT: String(await freePort()),
          TLS_PORT: String(taken), TLS_CERT_FILE: pair.cert, TLS_KEY_FILE: pair.key,
        });
        assert.equal(code, 1);
        const fatal = logs.filter((line) => line.level === 60);
        assert.equal(fatal.length, 1, JSON.stringify(fatal));
        assert.match(fatal[0]!.msg, new RegExp(`cannot listen on TLS_PORT=${taken} \\(127.0.0.1:${taken}\\): address already in use`));
      } finally {
        blocker.close();
      }
    });
  });

  it('refuses to start embedded when TLS_PORT is taken, or the key is not the certificate\'s, naming the variable', async () => {
    const pair = certs.signedByCa('embedded');
    const other = certs.signedByCa('other');
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const taken = (blocker.address() as { port: number }).port;
    const base = { REDIS_URL: '', PORT: String(await freePort()), HEALTH_PORT: String(await freePort()) };
    try {
      const bind = await runToExit({ ...base, TLS_PORT: String(taken), TLS_CERT_FILE: pair.cert, TLS_KEY_FILE: pair.key });
      assert.equal(bind.code, 1);
      assert.match(bind.logs.find((line) => line.level === 60)!.msg, new RegExp(`TLS_PORT=${taken}.*address already in use`));
    } finally {
      blocker.close();
    }
    const mismatch = await runToExit({ ...base, TLS_PORT: String(await freePort()), TLS_CERT_FILE: pair.cert, TLS_KEY_FILE: other.key });
    assert.equal(mismatch.code, 1);
    assert.match(mismatch.logs.find((line) => line.level === 60)!.msg, /^TLS_CERT_FILE=".*" and TLS_KEY_FILE=".*" are not a usable certificate and key/);
    const missing = await runToExit({ ...base, TLS_PORT: String(await freePort()), TLS_CERT_FILE: '/nonexistent.crt', TLS_KEY_FILE: pair.key });
    assert.equal(missing.code, 1);
    assert.match(missing.logs.find((line) => line.level === 60)!.msg, /^TLS_CERT_FILE="\/nonexistent.crt" cannot be read: ENOENT/);
  });
});
