import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { encodeProxyHeader } from '../../src/net/proxy-protocol.js';
import { PROXY_HEADER_TIMEOUT_MS } from '../../src/server.js';
import { TestCertificates } from '../helpers/certs.js';
import { ChatProcess, type LogLine } from '../helpers/chat-process.js';
import { LineClient } from '../helpers/client.js';
import { edgeClient, metricValue, proxiedFrom } from '../helpers/edge.js';
import { freePort } from '../helpers/ports.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import { waitFor } from '../helpers/wait.js';

// PROXY_PROTOCOL=true, as behind HAProxy's send-proxy-v2: the client's address is the one in
// the header for logs and for MAX_CONNECTIONS_PER_IP; a connection without a valid header is
// closed without a word. And with PROXY_PROTOCOL=false a header is just bytes on a chat line.

const opened = (chat: ChatProcess): LogLine[] => chat.logs.filter((line) => line.msg === 'connection opened');

/** The 'connection opened' line of this client's connection (matched by its port, which the server sees as `via`). */
function openedLine(chat: ChatProcess, client: LineClient): Promise<LogLine> {
  const via = `127.0.0.1:${client.socket.localPort}`;
  return waitFor(`the connection from ${via} to be logged`, () => opened(chat).find((line) => line.via === via), 3000);
}

/** Whether the server closes the connection without sending a byte. */
async function closedInSilence(client: LineClient): Promise<void> {
  await client.closed;
  await assert.rejects(client.nextLine(10), /connection closed/);
}

describe('PROXY protocol v2 (embedded)', { timeout: 120_000 }, () => {
  const certs = new TestCertificates();
  let chat: ChatProcess;
  let tlsPort: number;
  let ca: string;
  before(async () => {
    const pair = certs.signedByCa('proxy');
    ca = pair.ca;
    tlsPort = await freePort();
    chat = await ChatProcess.start({
      REDIS_URL: '', PROXY_PROTOCOL: 'true', MAX_CONNECTIONS_PER_IP: '2', LOG_LEVEL: 'debug',
      TLS_PORT: String(tlsPort), TLS_CERT_FILE: pair.cert, TLS_KEY_FILE: pair.key,
    });
  });
  after(async () => {
    await chat?.stop();
    certs.cleanup();
  });

  it('logs the client address from the header, IPv4 and IPv6, with the balancer as "via"', async () => {
    const { client: four } = await edgeClient(chat.port, { proxy: proxiedFrom('203.0.113.7', 40001) });
    const { client: six } = await edgeClient(chat.port, { proxy: proxiedFrom('2001:db8:0:0:0:0:0:7', 40002) });
    await four.command('LOGIN four', 'OK');
    await six.command('LOGIN six', 'OK');
    await four.command('MSG six hello from 203.0.113.7', 'OK');
    await six.expect('GOTUSERMSG four hello from 203.0.113.7');
    assert.equal((await openedLine(chat, four)).remote, '203.0.113.7:40001');
    assert.equal((await openedLine(chat, six)).remote, '[2001:db8::7]:40002');
    four.destroy();
    six.destroy();
  });

  it('takes a header split byte by byte, and a header with the first command in the same packet', async () => {
    const socket = connect({ port: chat.port, host: '127.0.0.1' });
    await new Promise((resolve) => socket.once('connect', resolve));
    const slow = LineClient.over(socket);
    for (const byte of encodeProxyHeader(proxiedFrom('198.51.100.20'))) {
      socket.write(Buffer.from([byte]));
      await sleep(2);
    }
    await slow.command('LOGIN slowpoke', 'OK');
    const { client: eager } = await edgeClient(chat.port, { proxy: proxiedFrom('198.51.100.21'), firstBytes: 'LOGIN eager\nMSG slowpoke hi\n' });
    await eager.expect('OK', 'OK');
    await slow.expect('GOTUSERMSG eager hi');
    slow.destroy();
    eager.destroy();
  });

  it('uses the socket address for LOCAL (the balancer\'s own health check)', async () => {
    const { client } = await edgeClient(chat.port, { proxy: { command: 'LOCAL' } });
    await client.command('PING', 'PONG');
    const line = await openedLine(chat, client);
    assert.equal(line.remote, line.via);
    client.destroy();
  });

  it('reads the header before the TLS handshake on TLS_PORT', async () => {
    const { client } = await edgeClient(tlsPort, { proxy: proxiedFrom('192.0.2.44', 41000), tlsCa: ca });
    await client.command('LOGIN secured', 'OK');
    const line = await openedLine(chat, client);
    assert.equal(line.remote, '192.0.2.44:41000');
    assert.equal(line.tls, true);
    client.destroy();
  });

  it('closes a connection without a valid header without a word, and counts it', async () => {
    const before = await metricValue(chat.healthPort, 'chatline_connections_closed_total', 'reason="proxy_header"');
    const direct = await LineClient.connect(chat.port);
    direct.send('LOGIN bypass');
    await closedInSilence(direct);
    const v1 = await LineClient.connect(chat.port);
    v1.sendRaw('PROXY TCP4 203.0.113.9 192.0.2.1 5555 8888\r\nLOGIN v1\n');
    await closedInSilence(v1);
    await waitFor('both to be counted', async () =>
      await metricValue(chat.healthPort, 'chatline_connections_closed_total', 'reason="proxy_header"') === before + 2);
    const warnings = await waitFor('both to be logged', () => {
      const lines = chat.logs.filter((line) => line.msg.startsWith('closing a connection without a valid PROXY protocol v2 header'));
      return lines.length >= 2 && lines;
    }, 3000);
    assert.deepEqual(warnings.slice(-2).map((line) => line.reason), ['no PROXY protocol v2 signature', 'a PROXY protocol v1 (text) header; v2 is expected']);
  });

  it('closes a connection that sends no header in time, but does not count one that just connects and leaves', async () => {
    const before = await metricValue(chat.healthPort, 'chatline_connections_closed_total', 'reason="proxy_header"');
    const probe = await LineClient.connect(chat.port);
    await probe.close();
    const mute = await LineClient.connect(chat.port);
    const started = Date.now();
    await closedInSilence(mute);
    const waited = Date.now() - started;
    assert.ok(waited >= PROXY_HEADER_TIMEOUT_MS - 100 && waited < PROXY_HEADER_TIMEOUT_MS + 2000, `closed after ${waited} ms`);
    await waitFor('the timeout to be counted, and only it', async () =>
      await metricValue(chat.healthPort, 'chatline_connections_closed_total', 'reason="proxy_header"') === before + 1);
  });

  it('holds MAX_CONNECTIONS_PER_IP to the address in the header', async () => {
    await sleep(200); // earlier tests' connections finish closing
    const first = (await edgeClient(chat.port, { proxy: proxiedFrom('198.51.100.1', 1) })).client;
    const second = (await edgeClient(tlsPort, { proxy: proxiedFrom('198.51.100.1', 2), tlsCa: ca })).client;
    await first.command('PING', 'PONG');
    await second.command('PING', 'PONG');
    const third = (await edgeClient(chat.port, { proxy: proxiedFrom('198.51.100.1', 3) })).client;
    await third.expect('ERROR TOO MANY CONNECTIONS');
    await third.closed;
    // Another address behind the same balancer is not affected, IPv4-mapped IPv6 counts as IPv4.
    const neighbour = (await edgeClient(chat.port, { proxy: proxiedFrom('198.51.100.2') })).client;
    await neighbour.command('PING', 'PONG');
    const mapped = (await edgeClient(chat.port, { proxy: proxiedFrom('::ffff:c633:6401') })).client; // ::ffff:198.51.100.1
    await mapped.expect('ERROR TOO MANY CONNECTIONS');
    first.destroy();
    await waitFor('the address to have a free slot again', async () => {
      const again = (await edgeClient(chat.port, { proxy: proxiedFrom('198.51.100.1', 4) })).client;
      again.send('PING');
      const reply = await again.nextLine();
      again.destroy();
      return reply === 'PONG';
    }, 3000);
    assert.ok(await metricValue(chat.healthPort, 'chatline_connections_closed_total', 'reason="per_ip_limit"') >= 2);
    second.destroy();
    neighbour.destroy();
  });
});

describe('PROXY protocol v2 off', { timeout: 60_000 }, () => {
  it('treats a header as bytes of chat lines: a control character, and the QUIT inside the signature', async () => {
    const chat = await ChatProcess.start({ REDIS_URL: '' });
    try {
      const { client } = await edgeClient(chat.port, { proxy: proxiedFrom('203.0.113.7'), firstBytes: 'LOGIN alice\n' });
      const localPort = client.socket.localPort;
      // \r\n \r\n \0\r\n QUIT\n: two blank lines, a NUL, then QUIT, which ends the connection.
      await client.expect('ERROR INVALID CHARACTERS', 'OK');
      await client.closed;
      assert.equal((await waitFor('the connection to be logged', () => opened(chat).at(-1))).remote, `127.0.0.1:${localPort}`);
    } finally {
      await chat.stop();
    }
  });
});

describe('PROXY protocol v2 and MAX_CONNECTIONS_PER_IP in Redis mode', { timeout: 120_000 }, () => {
  let redis: TestRedis;
  let chat: ChatProcess;
  before(async () => {
    redis = await startRedis();
    chat = await ChatProcess.start({ REDIS_URL: redis.url, REDIS_PREFIX: 'proxy:', PROXY_PROTOCOL: 'true', MAX_CONNECTIONS_PER_IP: '2' }, 2);
  });
  after(async () => {
    await chat?.stop();
    await redis?.stop();
  });

  it('counts one address across all workers of the instance, and gives a dead worker\'s slots back', { timeout: 60_000 }, async () => {
    let nextPort = 50000;
    const from = (address: string) => edgeClient(chat.port, { proxy: proxiedFrom(address, nextPort++) }).then(({ client }) => client);
    // Round-robin: consecutive connections land on alternate workers.
    const held = [await from('203.0.113.50'), await from('203.0.113.50')];
    await Promise.all(held.map((client, i) => client.command(`LOGIN held${i}`, 'OK')));
    await waitFor('the two connections to be logged by two different workers', () =>
      new Set(opened(chat).map((line) => line.worker)).size === 2, 3000);
    const third = await from('203.0.113.50');
    await third.expect('ERROR TOO MANY CONNECTIONS');
    const other = await from('203.0.113.51');
    await other.command('LOGIN other', 'OK');

    // The worker holding held0 dies: its slot comes back with it.
    const ready = await chat.probe('/readyz');
    const pids = (ready.body.workers as { pid: number }[]).map((worker) => worker.pid);
    const held0Worker = (await waitFor('the first connection to be logged', () =>
      chat.logs.find((line) => line.msg === 'connection opened' && line.remote === '203.0.113.50:50000'))).pid;
    assert.ok(pids.includes(held0Worker as number));
    process.kill(held0Worker as number, 'SIGKILL');
    await held[0]!.closed;
    await waitFor('a connection from the address to be admitted again', async () => {
      const again = await from('203.0.113.50');
      again.send('PING');
      const reply = await again.nextLine().catch(() => 'closed');
      if (reply !== 'PONG') again.destroy();
      else held.push(again);
      return reply === 'PONG';
    }, 10_000);
    for (const client of [...held, other]) client.destroy();
  });
});
