import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ChatProcess } from '../helpers/chat-process.js';
import { LineClient, loggedIn } from '../helpers/client.js';

// Floods and hostile clients meet the documented limits (embedded mode: the limits live in the
// session and server, which both modes share).

describe('limits', () => {
  let chat: ChatProcess;
  before(async () => {
    chat = await ChatProcess.start({
      REDIS_URL: '', RATE_BURST: '5', RATE_PER_SEC: '2', MAX_CONNECTIONS: '4', MAX_ROOMS_PER_USER: '2',
      IDLE_TIMEOUT_MS: '1500',
    });
  });
  after(async () => { await chat.stop(); });

  it('answers RATE LIMITED past the burst, without doing the command, then recovers', async () => {
    const client = await LineClient.connect(chat.port);
    client.send('LOGIN flooder', ...Array.from({ length: 9 }, (_, i) => `MSG flooder n${i}`));
    const lines = await client.take(1 + 4 * 2 + 5);
    assert.deepEqual(lines.slice(0, 9), ['OK', 'OK', 'GOTUSERMSG flooder n0', 'OK', 'GOTUSERMSG flooder n1',
      'OK', 'GOTUSERMSG flooder n2', 'OK', 'GOTUSERMSG flooder n3']);
    assert.deepEqual(lines.slice(9), Array(5).fill('ERROR RATE LIMITED'));
    await new Promise((resolve) => setTimeout(resolve, 1100));
    await client.command('MSG flooder again', 'OK', 'GOTUSERMSG flooder again');
    client.destroy();
  });

  it('caps rooms per user', async () => {
    const client = await loggedIn(chat.port, 'roamer');
    await client.command('JOIN #a', 'OK');
    await client.command('JOIN #b', 'OK');
    await client.command('JOIN #c', 'ERROR TOO MANY ROOMS');
    await client.command('JOIN #A', 'ERROR roamer ALREADY JOINED #A');
    client.destroy();
  });

  it('refuses a line that never ends once, holds no more of it, and keeps the connection', async () => {
    const client = await LineClient.connect(chat.port);
    for (let i = 0; i < 20; i++) client.sendRaw('x'.repeat(5000));
    await client.expect('ERROR LINE TOO LONG');
    client.sendRaw('still the same line\nLOGOUT\n');
    await client.expect('ERROR USER NOT LOGGED IN');
    client.destroy();
  });

  it('closes a silent connection after IDLE_TIMEOUT_MS and logs it out', async () => {
    const client = await loggedIn(chat.port, 'sleeper');
    await client.expect('ERROR IDLE TIMEOUT');
    await client.closed;
    const next = await loggedIn(chat.port, 'sleeper');
    next.destroy();
  });

  it('tells a connection over MAX_CONNECTIONS that the server is full, and closes it', async () => {
    await new Promise((resolve) => setTimeout(resolve, 200)); // earlier tests' sockets finish closing
    const held = await Promise.all(Array.from({ length: 4 }, () => LineClient.connect(chat.port)));
    const extra = await LineClient.connect(chat.port);
    await extra.expect('ERROR SERVER FULL');
    await extra.closed;
    await held[0]!.command('LOGIN still-served', 'OK');
    for (const client of held) client.destroy();
  });
});
