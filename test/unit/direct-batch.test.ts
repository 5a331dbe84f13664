import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DirectMessageBatcher } from '../../src/backplane/redis/direct-batch.js';
import { RedisKeys } from '../../src/backplane/redis/keys.js';
import type { ChatScripts } from '../../src/backplane/redis/scripts.js';

// The DM batch without Redis: what reaches the script, and what each sender learns. The real
// script runs in the backplane contract suite.

interface Call {
  userHashes: string[];
  channels: string[];
  lines: string[];
}

/** Records each sendToUsers call and answers "logged in" for the users in `online`. */
function recordingScripts(online: Set<string>, calls: Call[], failWith?: Error): ChatScripts {
  const keys = new RedisKeys('t:');
  const scripts: Pick<ChatScripts, 'sendToUsers'> = {
    async sendToUsers(n, ...keysThenArgs) {
      if (failWith) throw failWith;
      const call = { userHashes: keysThenArgs.slice(0, n), channels: keysThenArgs.slice(n, 2 * n), lines: keysThenArgs.slice(2 * n) };
      calls.push(call);
      return call.userHashes.map((hash) => ([...online].some((user) => keys.user(user) === hash) ? 1 : 0));
    },
  };
  return scripts as ChatScripts;
}

describe('DM batch', () => {
  const keys = new RedisKeys('t:');

  it('sends the DMs of one event-loop turn as one call, each recipient\'s lines joined in order', async () => {
    const calls: Call[] = [];
    const batcher = new DirectMessageBatcher(recordingScripts(new Set(['bob', 'carol']), calls), keys);
    const results = await Promise.all([
      batcher.send('bob', 'one\r\n'),
      batcher.send('carol', 'two\r\n'),
      batcher.send('nobody', 'lost\r\n'),
      batcher.send('bob', 'three\r\n'),
    ]);
    assert.deepEqual(results, [true, true, false, true]);
    assert.deepEqual(calls, [{
      userHashes: [keys.user('bob'), keys.user('carol'), keys.user('nobody')],
      channels: [keys.userChannel('bob'), keys.userChannel('carol'), keys.userChannel('nobody')],
      lines: ['one\r\nthree\r\n', 'two\r\n', 'lost\r\n'],
    }]);
  });

  it('sends what is queued at once on flush(), so a later call cannot overtake it', async () => {
    const calls: Call[] = [];
    const batcher = new DirectMessageBatcher(recordingScripts(new Set(['bob']), calls), keys);
    const first = batcher.send('bob', 'before\r\n');
    batcher.flush();
    assert.equal(calls.length, 1, 'sent synchronously by flush()');
    const second = batcher.send('bob', 'after\r\n');
    await Promise.all([first, second]);
    assert.deepEqual(calls.map((call) => call.lines), [['before\r\n'], ['after\r\n']]);
  });

  it('starts a new call every 1000 messages', async () => {
    const calls: Call[] = [];
    const batcher = new DirectMessageBatcher(recordingScripts(new Set(['bob']), calls), keys);
    await Promise.all(Array.from({ length: 2500 }, (_, i) => batcher.send('bob', `${i}\r\n`)));
    assert.deepEqual(calls.map((call) => call.lines[0]!.split('\r\n').length - 1), [1000, 1000, 500]);
  });

  it('fails every DM of a batch that could not be sent', async () => {
    const batcher = new DirectMessageBatcher(recordingScripts(new Set(), [], new Error('redis down')), keys);
    const results = await Promise.allSettled([batcher.send('bob', 'a\r\n'), batcher.send('carol', 'b\r\n')]);
    assert.deepEqual(results.map((result) => result.status), ['rejected', 'rejected']);
  });
});
