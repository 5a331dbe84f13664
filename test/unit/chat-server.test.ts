import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, it } from 'node:test';
import { pino } from 'pino';
import { ChatServer, type ServerLimits } from '../../src/server.js';
import type { Session } from '../../src/session.js';
import { LineClient } from '../helpers/client.js';
import { FakeBackplane } from '../helpers/fake-backplane.js';
import { aWhile, TEST_LIMITS, within } from '../helpers/session-harness.js';
import { waitFor } from '../helpers/wait.js';

// ChatServer in process on 127.0.0.1 port 0, with the fake backplane: the limits that span
// connections (how many, how long idle, the worker's total output) and the shutdown drain.
// Timeouts are set small and only their outcome is asserted (the ERROR line, the close, the
// logout), never how soon it came.

const SERVER_LIMITS: ServerLimits = {
  ...TEST_LIMITS,
  maxConnections: 100,
  maxConnectionsPerIp: 0,
  maxWorkerPendingBytes: 256 * 1024 * 1024,
  idleTimeoutMs: 0,
  loginTimeoutMs: 0,
  keepaliveMs: 0,
};

interface Running {
  server: ChatServer;
  fake: FakeBackplane;
  connect(): Promise<LineClient>;
  /** Connects, and waits until the server has taken the connection on (PING answered). */
  ready(): Promise<LineClient>;
  loggedIn(user: string): Promise<LineClient>;
}

const running: { server: ChatServer; fake: FakeBackplane; clients: LineClient[] }[] = [];
afterEach(async () => {
  for (const { server, fake, clients } of running.splice(0)) {
    fake.answerEverythingAtOnce();
    for (const call of fake.calls) if (!call.settled && call.method === 'logout') call.resolve(undefined);
    for (const client of clients) client.destroy();
    await within('the server to close after the test', server.close(0));
  }
});

async function start(limits: Partial<ServerLimits> = {}, fake = new FakeBackplane()): Promise<Running> {
  const server = new ChatServer({ tag: 'test', log: pino({ level: 'silent' }), limits: { ...SERVER_LIMITS, ...limits } });
  const { port } = (await server.listen(fake, '127.0.0.1', 0)) as AddressInfo;
  const clients: LineClient[] = [];
  running.push({ server, fake, clients });
  const connect = async () => {
    const client = await LineClient.connect(port);
    clients.push(client);
    return client;
  };
  const ready = async () => {
    const client = await connect();
    await client.command('PING', 'PONG');
    return client;
  };
  const loggedIn = async (user: string) => {
    const client = await connect();
    await client.command(`LOGIN ${user}`, 'OK');
    return client;
  };
  return { server, fake, connect, ready, loggedIn };
}

/** Every line until the server closes the connection. */
async function linesUntilClosed(client: LineClient): Promise<string[]> {
  const lines: string[] = [];
  for (;;) {
    try {
      lines.push(await client.nextLine());
    } catch (error) {
      if ((error as Error).message.includes('closed')) return lines;
      throw error;
    }
  }
}

describe('ChatServer: connection limits', () => {
  it('refuses a connection over MAX_CONNECTIONS with ERROR SERVER FULL, and takes one again once a client left', async () => {
    const { server, connect, ready } = await start({ maxConnections: 2 });
    const first = await ready();
    const second = await ready();
    const third = await connect();
    assert.deepEqual(await linesUntilClosed(third), ['ERROR SERVER FULL']);
    await second.command('PING still', 'PONG still');

    await first.close();
    await waitFor('the server to see the client leave', () => server.clientCount === 1);
    const fourth = await connect();
    await fourth.command('PING', 'PONG');
  });

  it('refuses a connection over MAX_CONNECTIONS_PER_IP with ERROR TOO MANY CONNECTIONS', async () => {
    const { ready, connect } = await start({ maxConnectionsPerIp: 1 });
    const first = await ready();
    assert.deepEqual(await linesUntilClosed(await connect()), ['ERROR TOO MANY CONNECTIONS']);
    await first.command('PING', 'PONG');
  });
});

describe('ChatServer: timeouts', () => {
  it('closes a connection silent for IDLE_TIMEOUT_MS with ERROR IDLE TIMEOUT, and logs its user out', async () => {
    const fake = new FakeBackplane().answerAtOnce('login').answerAtOnce('logout');
    const { loggedIn, ready } = await start({ idleTimeoutMs: 1000 }, fake);
    const idle = await loggedIn('idler');
    const busy = await ready();
    let pings = 0;
    const pinging = setInterval(() => busy.send(`PING ${++pings}`), 100);
    try {
      assert.deepEqual(await linesUntilClosed(idle), ['ERROR IDLE TIMEOUT']);
      await fake.waitForCalls('logout', 1);
      assert.deepEqual(fake.only('logout').args, [{ loginId: 'login-idler', user: 'idler' }]);
    } finally {
      clearInterval(pinging);
    }
    // Connected as long, but it kept sending: still served.
    const answers = await busy.take(pings);
    assert.deepEqual(answers, Array.from({ length: pings }, (_, i) => `PONG ${i + 1}`));
    await busy.command('PING last', 'PONG last');
  });

  it('closes a connection not logged in within LOGIN_TIMEOUT_MS with ERROR LOGIN TIMEOUT, counting from connect or LOGOUT', async () => {
    const fake = new FakeBackplane().answerAtOnce('login').answerAtOnce('logout');
    const { connect, loggedIn } = await start({ loginTimeoutMs: 1000 }, fake);
    const never = await connect();
    const stays = await loggedIn('stays');
    const leaves = await loggedIn('leaves');
    await leaves.command('LOGOUT', 'OK');
    const [neverLines, leavesLines] = await Promise.all([linesUntilClosed(never), linesUntilClosed(leaves)]);
    assert.deepEqual(neverLines, ['ERROR LOGIN TIMEOUT']);
    assert.deepEqual(leavesLines, ['ERROR LOGIN TIMEOUT']);
    await stays.command('PING', 'PONG');
  });
});

describe('ChatServer: close()', () => {
  it('tells every client ERROR SERVER SHUTTING DOWN, and resolves only once each one is logged out', async () => {
    const fake = new FakeBackplane().answerAtOnce('login');
    const { server, loggedIn, connect } = await start({}, fake);
    const alice = await loggedIn('alice');
    const bob = await loggedIn('bob');
    const anonymous = await connect();
    await anonymous.command('PING', 'PONG');

    let closed = false;
    const closing = server.close(100).then(() => { closed = true; });
    const lines = await Promise.all([alice, bob, anonymous].map(linesUntilClosed));
    assert.deepEqual(lines, [['ERROR SERVER SHUTTING DOWN'], ['ERROR SERVER SHUTTING DOWN'], ['ERROR SERVER SHUTTING DOWN']]);
    const logouts = await fake.waitForCalls('logout', 2);
    assert.deepEqual(logouts.map((call) => call.args[0].user).sort(), ['alice', 'bob']);

    await aWhile();
    assert.equal(closed, false, 'resolved with two logouts still running');
    logouts[0]!.resolve(undefined);
    await aWhile();
    assert.equal(closed, false, 'resolved with one logout still running');
    logouts[1]!.resolve(undefined);
    await within('close() to resolve', closing);
    await assert.rejects(connect(), /ECONNREFUSED/, 'still accepting after close()');
  });
});

describe('ChatServer: output over MAX_WORKER_PENDING_BYTES', () => {
  it('closes the client with the largest backlog first, with ERROR TOO MUCH PENDING OUTPUT, and keeps the others', async () => {
    const MiB = 1024 * 1024;
    const fake = new FakeBackplane().answerAtOnce('login').answerAtOnce('logout');
    // The per-connection limit is out of the way: only the worker's total is at stake.
    const { loggedIn } = await start({ maxWorkerPendingBytes: 2 * MiB, maxPendingBytes: 256 * MiB }, fake);
    const heavy = await loggedIn('heavy');
    const light = await loggedIn('light');
    const reader = await loggedIn('reader');
    heavy.socket.pause();
    light.socket.pause();
    const line = (user: string, i: number) => `GOTUSERMSG ${user} ${String(i).padStart(6, '0')} ${'x'.repeat(64 * 1024)}\r\n`;
    const session = (user: string) => fake.clientOf(user) as Session;

    /** Delivers to `user` until its server-side backlog (past what the kernel holds) reaches `bytes`. */
    const backlog = async (user: string, bytes: number) => {
      let sent = 0;
      while (session(user).pendingBytes < bytes && !session(user).isClosing) {
        session(user).deliver(line(user, sent++));
        await new Promise((resolve) => setImmediate(resolve));
        if (sent > 2000) assert.fail(`${user}'s backlog never reached ${bytes} bytes`);
      }
      return sent;
    };
    // 1 MiB waiting for light: under the cap alone, and under the 90 % the shedding stops at.
    const sentToLight = await backlog('light', MiB);
    // heavy's backlog grows past light's, and the two together past the cap.
    const sentToHeavy = await backlog('heavy', 3 * MiB);
    await fake.waitForCalls('logout', 1);
    assert.deepEqual(fake.only('logout').args[0].user, 'heavy');

    // heavy reads at last: everything queued before the cut, then the line naming the limit.
    heavy.socket.resume();
    const heavyLines = await linesUntilClosed(heavy);
    assert.equal(heavyLines.at(-1), 'ERROR TOO MUCH PENDING OUTPUT');
    const delivered = heavyLines.slice(0, -1).map((text) => text.slice(0, 24));
    assert.ok(delivered.length <= sentToHeavy);
    assert.deepEqual(delivered, Array.from({ length: delivered.length }, (_, i) => line('heavy', i).slice(0, 24)), 'deliveries in order, none after the ERROR');

    await aWhile(600); // two more sweeps: light's backlog alone is under the cap
    assert.equal(fake.callsOf('logout').length, 1, 'a client other than the largest was closed');
    light.socket.resume();
    const lightLines = await light.take(sentToLight);
    assert.deepEqual(lightLines.map((text) => text.slice(0, 24)), Array.from({ length: sentToLight }, (_, i) => line('light', i).slice(0, 24)));
    await light.command('PING', 'PONG');
    await reader.command('PING', 'PONG');
  });
});
