import assert from 'node:assert/strict';
import { once } from 'node:events';
import { afterEach, describe, it } from 'node:test';
import { BackplaneUnavailableError } from '../../src/backplane/errors.js';
import type { Member } from '../../src/backplane/types.js';
import { COMMANDS } from '../../src/commands.js';
import { InputBudget } from '../../src/input-budget.js';
import { metrics } from '../../src/metrics.js';
import { FakeBackplane } from '../helpers/fake-backplane.js';
import {
  aWhile, capturingLogger, PINO_ERROR, startSession, type SessionUnderTest, within, withinThisTurn,
} from '../helpers/session-harness.js';

// One Session, in process, over a real loopback connection, with a backplane that answers when
// the test says so. What is asserted is what a client or the shared state would notice: which
// backplane calls are made and when, and the bytes written back, their order and their writes.

const alice: Member = { loginId: 'login-alice', user: 'alice' };

const started: SessionUnderTest[] = [];
afterEach(async () => {
  await Promise.all(started.splice(0).map((s) => s.stop()));
});

async function session(fake: FakeBackplane, options: Omit<Parameters<typeof startSession>[0], 'backplane'> = {}) {
  const s = await startSession({ backplane: fake, ...options });
  started.push(s);
  return s;
}

/** A session logged in as alice; login answers are held again afterwards. */
async function aliceSession(fake: FakeBackplane, options: Omit<Parameters<typeof startSession>[0], 'backplane'> = {}) {
  fake.answerAtOnce('login');
  const s = await session(fake, options);
  await s.client.command('LOGIN alice', 'OK');
  fake.holdAnswers('login');
  return s;
}

const okWithCopy = (room: string, text: string) => ['OK', `GOTROOMMSG alice ${room} ${text}`];

describe('Session: barriers', () => {
  it('runs pipelined MSGs concurrently, and starts a JOIN after them only once all three finished', async () => {
    const fake = new FakeBackplane();
    const s = await aliceSession(fake);
    s.client.send('MSG bob one', 'MSG bob two', 'MSG bob three', 'JOIN #a', 'MSG bob four');
    const sends = await fake.waitForCalls('sendToUser', 3);
    await aWhile();
    assert.deepEqual(fake.methods, ['login', 'sendToUser', 'sendToUser', 'sendToUser'], 'all three MSGs before any answer, and nothing else');
    assert.deepEqual(sends.map((call) => call.args[2]), ['one', 'two', 'three']);

    sends[2]!.resolve('ok');
    sends[0]!.resolve('ok');
    await aWhile();
    assert.equal(fake.callsOf('join').length, 0, 'JOIN waits while one MSG before it is still running');

    sends[1]!.resolve('ok');
    const [join] = await fake.waitForCalls('join', 1);
    assert.deepEqual(join!.args, [alice, '#a']);
    await aWhile();
    assert.equal(fake.callsOf('sendToUser').length, 3, 'the MSG after the JOIN waits for it');

    join!.resolve('ok');
    (await fake.waitForCalls('sendToUser', 4))[3]!.resolve('ok');
    await s.client.expect('OK', 'OK', 'OK', 'OK', 'OK');
  });

  // Each barrier, then a command that would reach the backplane at once if the barrier let it.
  const barriers: { name: string; lines: string[]; barrier: 'login' | 'logout' | 'join' | 'part'; next: 'sendToUser' | 'login' | 'sendToRoom' }[] = [
    { name: 'LOGIN', lines: ['LOGIN alice', 'MSG bob hi'], barrier: 'login', next: 'sendToUser' },
    { name: 'LOGOUT', lines: ['LOGOUT', 'LOGIN bob'], barrier: 'logout', next: 'login' },
    { name: 'JOIN', lines: ['JOIN #a', 'MSG #a hi'], barrier: 'join', next: 'sendToRoom' },
    { name: 'PART', lines: ['PART #a', 'MSG #a hi'], barrier: 'part', next: 'sendToRoom' },
  ];
  for (const { name, lines, barrier, next } of barriers) {
    it(`starts nothing after a ${name} until the ${name} finished`, async () => {
      const fake = new FakeBackplane();
      const s = name === 'LOGIN' ? await session(fake) : await aliceSession(fake);
      const before = fake.callsOf(next).length;
      s.client.send(...lines);
      const [call] = await fake.waitForCalls(barrier, 1);
      await aWhile();
      assert.equal(fake.callsOf(next).length, before, `${lines[1]} reached the backplane while ${name} was running`);
      if (barrier === 'login') call!.resolve({ member: alice });
      else if (barrier === 'logout') call!.resolve(undefined);
      else call!.resolve('ok');
      const after = await fake.waitForCalls(next, before + 1);
      // It ran as the barrier left the session: logged in (after LOGIN), logged out (after LOGOUT: a new LOGIN).
      assert.deepEqual(after.at(-1)!.args[0], next === 'login' ? 'bob' : alice);
    });
  }

  it('lets PING, HELP, WHO and ROOMS run beside a pending MSG without holding up the MSG after them', async () => {
    const fake = new FakeBackplane();
    const s = await aliceSession(fake);
    s.client.send('MSG bob one', 'PING x', 'HELP', 'WHO #a', 'ROOMS', 'MSG bob two');
    const sends = await fake.waitForCalls('sendToUser', 2);
    const [who] = await fake.waitForCalls('roomMembers', 1);
    const [rooms] = await fake.waitForCalls('listRooms', 1);
    assert.deepEqual(fake.methods, ['login', 'sendToUser', 'roomMembers', 'listRooms', 'sendToUser'],
      'every backplane call made while the first MSG is unanswered');
    assert.equal(s.writes.length, 1, 'nothing but the LOGIN OK written while the first MSG is unanswered');

    sends[1]!.resolve('ok');
    rooms!.resolve([{ name: '#a', members: 1 }]);
    who!.resolve({ roomName: '#a', members: ['alice'] });
    sends[0]!.resolve('ok');
    const help = COMMANDS.map((spec) => `HELP ${spec.syntax} - ${spec.summary}`);
    await s.client.expect('OK', 'PONG x', ...help, 'OK', 'MEMBERS #a alice', 'OK', 'ROOM #a 1', 'OK', 'OK');
  });
});

describe('Session: reply order', () => {
  it('answers MSGs resolved in reverse in command order, local errors keeping their places', async () => {
    const fake = new FakeBackplane().answerAtOnce('listRooms');
    const s = await aliceSession(fake, { limits: { maxLineBytes: 64 } });
    s.client.send('MSG #a one', 'FOO');
    s.client.sendRaw(Buffer.from([0x4d, 0x53, 0x47, 0x20, 0xff, 0x0a])); // "MSG \xff": not UTF-8
    s.client.send('MSG #a two', 'x'.repeat(100), 'MSG #a three');
    // The sixth listing command within a second is over the WHO/ROOMS allowance: refused locally.
    s.client.send('ROOMS', 'ROOMS', 'ROOMS', 'ROOMS', 'ROOMS', 'ROOMS', 'MSG #a four');
    const sends = await fake.waitForCalls('sendToRoom', 4);
    assert.deepEqual(sends.map((call) => call.args[2]), ['one', 'two', 'three', 'four']);

    for (const index of [3, 2, 1]) {
      sends[index]!.resolve({ roomName: '#a' });
      await aWhile(20);
    }
    assert.equal(s.writes.length, 1, 'nothing written after the LOGIN OK while the first MSG is unanswered');
    sends[0]!.resolve({ roomName: '#a' });
    await s.client.expect(
      ...okWithCopy('#a', 'one'),
      'ERROR INVALID COMMAND',
      'ERROR INVALID ENCODING',
      ...okWithCopy('#a', 'two'),
      'ERROR LINE TOO LONG',
      ...okWithCopy('#a', 'three'),
      'OK', 'OK', 'OK', 'OK', 'OK',
      'ERROR RATE LIMITED',
      ...okWithCopy('#a', 'four'),
    );
  });
});

describe('Session: one write per turn', () => {
  it('writes the replies and a delivery produced in one turn as one write, in the order they came', async () => {
    const fake = new FakeBackplane();
    const s = await aliceSession(fake);
    s.client.send('MSG #a one', 'MSG #a two', 'MSG #a three');
    const sends = await fake.waitForCalls('sendToRoom', 3);
    const before = s.writes.length;

    // All in this turn: the delivery is written as it arrives; the replies once their commands
    // finish (a few microtasks later), in command order.
    sends[2]!.resolve({ roomName: '#a' });
    sends[0]!.resolve({ roomName: '#a' });
    fake.clientOf('alice').deliver('GOTUSERMSG bob hey\r\n');
    sends[1]!.resolve({ roomName: '#a' });
    await s.client.expect('GOTUSERMSG bob hey', ...okWithCopy('#a', 'one'), ...okWithCopy('#a', 'two'), ...okWithCopy('#a', 'three'));
    assert.deepEqual(s.writes.slice(before), [
      'GOTUSERMSG bob hey\r\nOK\r\nGOTROOMMSG alice #a one\r\nOK\r\nGOTROOMMSG alice #a two\r\nOK\r\nGOTROOMMSG alice #a three\r\n',
    ]);
  });

  it('puts a delivery that arrives between two replies between them, in the same write', async () => {
    const fake = new FakeBackplane();
    const s = await aliceSession(fake);
    s.client.send('MSG #a one', 'MSG #a two');
    const sends = await fake.waitForCalls('sendToRoom', 2);
    const before = s.writes.length;

    sends[0]!.resolve({ roomName: '#a' });
    await withinThisTurn(); // the first reply is ready, not yet written
    fake.clientOf('alice').deliver('GOTUSERMSG bob between\r\n');
    sends[1]!.resolve({ roomName: '#a' });
    await s.client.expect(...okWithCopy('#a', 'one'), 'GOTUSERMSG bob between', ...okWithCopy('#a', 'two'));
    assert.deepEqual(s.writes.slice(before), [
      'OK\r\nGOTROOMMSG alice #a one\r\nGOTUSERMSG bob between\r\nOK\r\nGOTROOMMSG alice #a two\r\n',
    ]);
  });
});

describe('Session: backpressure', () => {
  it('stops reading at 256 unanswered commands and reads again once half of them are answered', async () => {
    const fake = new FakeBackplane();
    const s = await aliceSession(fake);
    s.client.send(...Array.from({ length: 400 }, (_, i) => `MSG bob ${i}`));
    const first = await fake.waitForCalls('sendToUser', 256);
    await aWhile(200);
    assert.equal(fake.callsOf('sendToUser').length, 256, 'no 257th command taken on');
    assert.ok(s.socket.isPaused(), 'the socket is paused');

    for (const call of first.slice(0, 127)) call.resolve('ok');
    await aWhile(200);
    assert.equal(fake.callsOf('sendToUser').length, 256, 'still paused with 129 unanswered');
    assert.ok(s.socket.isPaused());

    first[127]!.resolve('ok');
    const more = await fake.waitForCalls('sendToUser', 384);
    await aWhile(200);
    assert.equal(more.length, 384, 'read again up to 256 unanswered, then paused again');
    assert.deepEqual(more.map((call) => call.args[2]), Array.from({ length: 384 }, (_, i) => String(i)), 'in order, none lost');

    fake.answerAtOnce('sendToUser');
    for (const call of more.slice(128)) call.resolve('ok');
    await fake.waitForCalls('sendToUser', 400);
    const replies = await s.client.take(400);
    assert.ok(replies.every((line) => line === 'OK'));
    assert.ok(!s.socket.isPaused(), 'reading again');
  });

  it('stops reading every session while the worker-wide input budget is spent, and wakes them once half is free', async () => {
    const fake = new FakeBackplane();
    // Room for five commands (each counted at 64 bytes at least) across the worker.
    const input = new InputBudget(5 * 64);
    const a = await aliceSession(fake, { input, id: 'test.a' });
    const b = await session(fake, { input, id: 'test.b' });
    a.client.send(...Array.from({ length: 6 }, (_, i) => `MSG bob ${i}`));
    const sends = await fake.waitForCalls('sendToUser', 5);
    b.client.send('PING b');
    await aWhile(200);
    assert.equal(fake.callsOf('sendToUser').length, 5, 'the sixth MSG waits for the budget (far below the session limit)');
    assert.ok(a.socket.isPaused() && b.socket.isPaused(), 'both sessions stopped reading');
    assert.deepEqual(b.writes, [], 'PING is not even taken on while the worker budget is spent');

    sends[0]!.resolve('ok');
    sends[1]!.resolve('ok');
    await aWhile(200);
    assert.deepEqual(b.writes, [], 'over half the budget still in use');

    // Answering A's commands, not B's own, is what lets B read again.
    sends[2]!.resolve('ok');
    sends[3]!.resolve('ok');
    await b.client.expect('PONG b');
    fake.answerAtOnce('sendToUser');
    for (const call of fake.callsOf('sendToUser')) if (!call.settled) call.resolve('ok');
    await a.client.expect('OK', 'OK', 'OK', 'OK', 'OK', 'OK');
    assert.deepEqual(fake.callsOf('sendToUser').map((call) => call.args[2]), ['0', '1', '2', '3', '4', '5']);
    assert.equal(input.usedBytes, 0, 'every command gave its bytes back');
  });
});

describe('Session: closing with commands in flight', () => {
  it('finishes the MSGs a client sent before hanging up, then logs it out once', async () => {
    const fake = new FakeBackplane();
    const s = await aliceSession(fake);
    let finished = false;
    void s.session.finished.then(() => { finished = true; });
    s.client.send('MSG bob one', 'MSG bob two', 'MSG bob three');
    const sends = await fake.waitForCalls('sendToUser', 3);
    s.client.socket.end();
    await once(s.socket, 'close');

    sends[1]!.resolve('ok');
    sends[2]!.resolve('ok');
    await aWhile();
    assert.equal(fake.callsOf('logout').length, 0, 'not logged out while a MSG it sent is still running');

    sends[0]!.resolve('ok');
    const [logout] = await fake.waitForCalls('logout', 1);
    assert.deepEqual(logout!.args, [alice]);
    await aWhile();
    assert.equal(finished, false, 'finished only once the logout is done');
    logout!.resolve(undefined);
    await within('the session to finish', s.session.finished);
    await aWhile();
    assert.deepEqual(fake.methods, ['login', 'sendToUser', 'sendToUser', 'sendToUser', 'logout']);
  });

  it('runs LOGIN and MSG sent just before a hang-up, then logs out', async () => {
    const fake = new FakeBackplane();
    const s = await session(fake);
    s.client.socket.end('LOGIN x\nMSG bob hi\n');
    const [login] = await fake.waitForCalls('login', 1);
    await once(s.socket, 'close');
    const x: Member = { loginId: 'login-x', user: 'x' };
    login!.resolve({ member: x });
    const [send] = await fake.waitForCalls('sendToUser', 1);
    assert.deepEqual(send!.args, [x, 'bob', 'hi']);
    await aWhile();
    assert.equal(fake.callsOf('logout').length, 0);
    send!.resolve('ok');
    const [logout] = await fake.waitForCalls('logout', 1);
    assert.deepEqual(logout!.args, [x]);
    logout!.resolve(undefined);
    await within('the session to finish', s.session.finished);
    assert.deepEqual(fake.methods, ['login', 'sendToUser', 'logout']);
  });
});

describe('Session: QUIT', () => {
  it('answers OK, closes, logs out, and runs nothing pipelined after it', async () => {
    const fake = new FakeBackplane().answerAtOnce('logout');
    const s = await aliceSession(fake);
    s.client.send('QUIT', 'MSG bob hi', 'JOIN #a', 'PING');
    await s.client.expect('OK');
    await within('the connection to close', s.client.closed);
    await within('the session to finish', s.session.finished);
    await aWhile();
    assert.deepEqual(fake.methods, ['login', 'logout']);
    assert.deepEqual(fake.only('logout').args, [alice]);
    assert.equal(s.written, 'OK\r\nOK\r\n', 'the LOGIN OK and the QUIT OK, nothing else');
  });

  it('waits for a MSG before it, answers both, and runs nothing pipelined after it', async () => {
    const fake = new FakeBackplane().answerAtOnce('logout');
    const s = await aliceSession(fake);
    s.client.send('MSG bob one', 'QUIT', 'MSG bob two');
    const [send] = await fake.waitForCalls('sendToUser', 1);
    await aWhile();
    send!.resolve('ok');
    await s.client.expect('OK', 'OK');
    await within('the connection to close', s.client.closed);
    await aWhile();
    assert.deepEqual(fake.callsOf('sendToUser').map((call) => call.args[2]), ['one'], 'a MSG pipelined after QUIT was sent');
    await within('the session to finish', s.session.finished);
    assert.deepEqual(fake.methods, ['login', 'sendToUser', 'logout']);
  });

  it('still logs out, once, a client that sent MSG, QUIT, MSG and hung up at once', async () => {
    const fake = new FakeBackplane().answerAtOnce('logout');
    const s = await aliceSession(fake);
    s.client.socket.end('MSG bob one\nQUIT\nMSG bob two\n');
    const [send] = await fake.waitForCalls('sendToUser', 1);
    await once(s.socket, 'close');
    send!.resolve('ok');
    await within('the session to finish', s.session.finished);
    await aWhile();
    assert.deepEqual(fake.methods, ['login', 'sendToUser', 'logout']);
  });

  it('works before LOGIN: OK and close, with nobody to log out', async () => {
    const fake = new FakeBackplane();
    const s = await session(fake);
    s.client.send('QUIT');
    await s.client.expect('OK');
    await within('the connection to close', s.client.closed);
    await within('the session to finish', s.session.finished);
    assert.deepEqual(fake.methods, []);
  });
});

describe('Session: errors', () => {
  it('answers a BackplaneUnavailableError with ERROR SERVICE UNAVAILABLE, and the command had no effect', async () => {
    const fake = new FakeBackplane();
    const { log, entries } = capturingLogger();
    const s = await session(fake, { log });
    s.client.send('LOGIN alice');
    (await fake.waitForCalls('login', 1))[0]!.reject(new BackplaneUnavailableError('unreachable'));
    await s.client.expect('ERROR SERVICE UNAVAILABLE');
    // Still not logged in: the LOGIN had no effect.
    await s.client.command('MSG bob hi', 'ERROR USER NOT LOGGED IN');
    assert.equal(fake.callsOf('sendToUser').length, 0);
    assert.deepEqual(entries.filter((entry) => entry.level >= PINO_ERROR), [], 'an outage is expected, not logged as a bug');
  });

  it('answers any other error with ERROR INTERNAL ERROR, logs it at error level, and carries on', async () => {
    const fake = new FakeBackplane();
    const { log, entries } = capturingLogger();
    const s = await aliceSession(fake, { log });
    const counted = (await metrics.internalErrors.get()).values[0]?.value ?? 0;
    s.client.send('MSG bob hi', 'PING after');
    (await fake.waitForCalls('sendToUser', 1))[0]!.reject(new TypeError('a bug'));
    await s.client.expect('ERROR INTERNAL ERROR', 'PONG after');
    const errors = entries.filter((entry) => entry.level >= PINO_ERROR);
    assert.equal(errors.length, 1, 'one error-level log line');
    assert.equal(errors[0]!.command, 'MSG');
    assert.match(JSON.stringify(errors[0]!.err), /TypeError.*a bug/);
    assert.equal((await metrics.internalErrors.get()).values[0]?.value, counted + 1);
  });
});

describe('Session: what the backplane does to it', () => {
  it('nameLost: tells the client its name is taken, and forgets the login (no logout at close)', async () => {
    const fake = new FakeBackplane();
    const s = await aliceSession(fake);
    fake.clientOf('alice').nameLost();
    await s.client.expect('ERROR alice IS ALREADY TAKEN');
    await s.client.command('MSG bob hi', 'ERROR USER NOT LOGGED IN');
    await s.client.close();
    await within('the session to finish', s.session.finished);
    assert.deepEqual(fake.methods, ['login']);
  });

  it('rebound: later commands, and the logout at close, act as the restored login', async () => {
    const fake = new FakeBackplane().answerAtOnce('sendToUser').answerAtOnce('logout');
    const s = await aliceSession(fake);
    const restored: Member = { loginId: 'restored', user: 'alice' };
    fake.clientOf('alice').rebound(restored);
    await s.client.command('MSG bob hi', 'OK');
    assert.deepEqual(fake.only('sendToUser').args[0], restored);
    await s.client.close();
    await within('the session to finish', s.session.finished);
    assert.deepEqual(fake.only('logout').args, [restored]);
  });
});
