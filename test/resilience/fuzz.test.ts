import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { ChatProcess } from '../helpers/chat-process.js';
import { LineClient, loggedIn } from '../helpers/client.js';
import { chatStateKeys, startRedis, type TestRedis } from '../helpers/redis.js';
import { waitFor } from '../helpers/wait.js';

// Random bytes and half-valid commands from many connections for a bounded time: afterwards the
// server still serves a fresh client correctly, and Redis holds no ghost of the fuzzers.

const CONNECTIONS = 24;
const DURATION_MS = 3000;
const MAX_WRITES_PER_CONNECTION = 400;
const PREFIX = 'fuzz:';

// Valid-looking pieces, so the fuzz also reaches login, rooms and delivery, not just the framer.
const word = fc.constantFrom('LOGIN', 'LOGOUT', 'JOIN', 'PART', 'MSG', 'login', 'msg', 'MSGX', '#', '#room',
  '#Room', 'fuzzer', 'FUZZER', 'other', '\t', ' ', '  ', '\r', '\n', '\r\n', '\x1b[2J', '\xff', 'é', 'x'.repeat(1100));
const chunk = fc.oneof(
  fc.uint8Array({ maxLength: 64 }).map((bytes) => Buffer.from(bytes)),
  fc.array(word, { maxLength: 12 }).map((words) => Buffer.from(words.join(' ') + '\n', 'latin1')),
  fc.array(word, { maxLength: 12 }).map((words) => Buffer.from(words.join(' '), 'utf8')),
);

describe('a TCP fuzzer', () => {
  let redis: TestRedis;
  let chat: ChatProcess;
  before(async () => {
    redis = await startRedis();
    chat = await ChatProcess.start({ REDIS_URL: redis.url, REDIS_PREFIX: PREFIX, RATE_BURST: '50', RATE_PER_SEC: '200' }, 2);
  });
  after(async () => {
    await chat?.stop();
    await redis?.stop();
  });

  it('leaves the server serving and Redis clean', async () => {
    const seed = Date.now();
    const sample = fc.sample(chunk, { numRuns: CONNECTIONS * MAX_WRITES_PER_CONNECTION, seed });
    const deadline = performance.now() + DURATION_MS;
    await Promise.all(Array.from({ length: CONNECTIONS }, async (_, c) => {
      const client = await LineClient.connect(chat.port);
      for (let i = 0; i < MAX_WRITES_PER_CONNECTION && performance.now() < deadline && !client.socket.destroyed; i++) {
        client.sendRaw(sample[c * MAX_WRITES_PER_CONNECTION + i]!);
        if (i % 20 === 0) await new Promise((resolve) => setImmediate(resolve));
      }
      if (c % 2) client.destroy();
      else await client.close();
    }));
    assert.ok(chat.child.exitCode === null, `the server survived (seed ${seed})`);

    await waitFor(`no chat state left by the fuzzers (seed ${seed})`, async () =>
      (await chatStateKeys(redis.client, PREFIX)).length === 0);
    const [alice, bob] = await Promise.all([loggedIn(chat.port, 'alice'), loggedIn(chat.port, 'bob')]);
    await alice.command('JOIN #after', 'OK');
    await bob.command('JOIN #after', 'OK');
    await alice.command('MSG #after still fine', 'OK', 'GOTROOMMSG alice #after still fine');
    await bob.expect('GOTROOMMSG alice #after still fine');
    await bob.command('MSG alice yes', 'OK');
    await alice.expect('GOTUSERMSG bob yes');
    alice.destroy();
    bob.destroy();
  });
});
