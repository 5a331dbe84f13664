import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BackplaneUnavailableError } from '../../src/backplane/errors.js';
import { type DirectOutcome, DirectMessageBatcher } from '../../src/backplane/redis/direct-batch.js';
import { RedisKeys } from '../../src/backplane/redis/keys.js';
import type { ChatScripts } from '../../src/backplane/redis/scripts.js';
import type { Member } from '../../src/backplane/types.js';

// The DM batch without Redis: what reaches the script, and what each sender learns. The real
// script runs in the backplane contract suite.

interface Call {
  userHashes: string[];
  deadline: number;
  channels: string[];
  /** Per run: sender position, sender login, recipient position, the run's lines. */
  runs: [number, string, number, string][];
}

const keys = new RedisKeys('t:');
const asIs = (outcome: DirectOutcome) => outcome;

/**
 * Records each sendDirect call and answers as the script would: users in `logins` are logged in
 * under those login ids; `answer` overrides the reply (an expired batch, a failure).
 */
function recordingScripts(logins: Record<string, string>, calls: Call[], answer?: () => Promise<number[]>): ChatScripts {
  const scripts: Pick<ChatScripts, 'sendDirect'> = {
    async sendDirect(n, ...rest) {
      const userHashes = rest.slice(0, n) as string[];
      const [deadline, , count] = rest.slice(n, n + 3) as [number, string, number];
      const channels = rest.slice(n + 3, 2 * n + 3) as string[];
      const flat = rest.slice(2 * n + 3);
      const runs = Array.from({ length: count }, (_, j) => flat.slice(4 * j, 4 * j + 4) as Call['runs'][number]);
      calls.push({ userHashes, deadline, channels, runs });
      if (answer) return answer();
      const loginAt = (position: number) => Object.entries(logins).find(([user]) => keys.user(user) === userHashes[position - 1])?.[1];
      return runs.map(([sender, senderLogin, recipient]) => {
        if (sender > 0 && loginAt(sender) !== senderLogin) return -2;
        return loginAt(recipient) ? 1 : 0;
      });
    },
  };
  return scripts as ChatScripts;
}

const alice: Member = { loginId: 'w.1', user: 'alice' };
const options = (checkSenders: boolean) => ({ checkSenders, publish: 'PUBLISH' as const, deadline: () => 1234 });

describe('DM batch', () => {
  it('sends the DMs of one event-loop turn as one call, a run per sender and recipient, and tells each sender its outcome', async () => {
    const calls: Call[] = [];
    const batcher = new DirectMessageBatcher(recordingScripts({ alice: 'w.1', bob: 'w.2', carol: 'w.3' }, calls), keys, options(true));
    const stale: Member = { loginId: 'w.0', user: 'alice' };
    const results = await Promise.all([
      batcher.send(alice, 'alice', 'bob', 'one\r\n', asIs),
      batcher.send(alice, 'alice', 'carol', 'two\r\n', asIs),
      batcher.send(alice, 'alice', 'nobody', 'lost\r\n', asIs),
      batcher.send(stale, 'alice', 'bob', 'impostor\r\n', asIs),
      batcher.send(alice, 'alice', 'bob', 'three\r\n', asIs),
    ]);
    assert.deepEqual(results, [1, 1, 0, -2, 1]);
    assert.equal(calls.length, 1);
    const [call] = calls;
    assert.deepEqual(call!.userHashes, ['alice', 'bob', 'carol', 'nobody'].map((user) => keys.user(user)));
    assert.deepEqual(call!.channels, ['alice', 'bob', 'carol', 'nobody'].map((user) => keys.userInbox(user)));
    assert.equal(call!.deadline, 1234);
    assert.deepEqual(call!.runs, [
      [1, 'w.1', 2, 'one\r\nthree\r\n'], [1, 'w.1', 3, 'two\r\n'], [1, 'w.1', 4, 'lost\r\n'], [1, 'w.0', 2, 'impostor\r\n'],
    ]);
  });

  it('on Redis Cluster, sends one call per recipient and leaves the sender to the lease', async () => {
    const calls: Call[] = [];
    const batcher = new DirectMessageBatcher(recordingScripts({ bob: 'w.2', carol: 'w.3' }, calls), keys, options(false));
    await Promise.all([
      batcher.send(alice, 'alice', 'bob', 'one\r\n', asIs),
      batcher.send(alice, 'alice', 'carol', 'two\r\n', asIs),
      batcher.send(alice, 'alice', 'bob', 'three\r\n', asIs),
    ]);
    assert.deepEqual(calls.map((call) => [call.userHashes, call.runs]), [
      [[keys.user('bob')], [[0, 'w.1', 1, 'one\r\nthree\r\n']]],
      [[keys.user('carol')], [[0, 'w.1', 1, 'two\r\n']]],
    ]);
  });

  it('sends what is queued at once on flush(), so a later call cannot overtake it', async () => {
    const calls: Call[] = [];
    const batcher = new DirectMessageBatcher(recordingScripts({ alice: 'w.1', bob: 'w.2' }, calls), keys, options(true));
    const first = batcher.send(alice, 'alice', 'bob', 'before\r\n', asIs);
    batcher.flush();
    assert.equal(calls.length, 1, 'sent synchronously by flush()');
    const second = batcher.send(alice, 'alice', 'bob', 'after\r\n', asIs);
    await Promise.all([first, second]);
    assert.deepEqual(calls.map((call) => call.runs.map((run) => run[3])), [['before\r\n'], ['after\r\n']]);
  });

  it('starts a new call every 1000 messages', async () => {
    const calls: Call[] = [];
    const batcher = new DirectMessageBatcher(recordingScripts({ alice: 'w.1', bob: 'w.2' }, calls), keys, options(true));
    await Promise.all(Array.from({ length: 2500 }, (_, i) => batcher.send(alice, 'alice', 'bob', `${i}\r\n`, asIs)));
    assert.deepEqual(calls.map((call) => call.runs[0]![3].split('\r\n').length - 1), [1000, 1000, 500]);
  });

  it('on Redis Cluster, sends a recipient\'s next call only once the one before it was answered', async () => {
    const calls: Call[] = [];
    const replies: (() => void)[] = [];
    // Each call waits for the test to answer it.
    const held = () => new Promise<number[]>((resolve) => replies.push(() => resolve([1])));
    const batcher = new DirectMessageBatcher(recordingScripts({ bob: 'w.2', carol: 'w.3' }, calls, held), keys, options(false));
    const toBob = Array.from({ length: 1500 }, (_, i) => batcher.send(alice, 'alice', 'bob', `${i}\r\n`, asIs));
    const toCarol = batcher.send(alice, 'alice', 'carol', 'meanwhile\r\n', asIs);
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(calls.map((call) => call.userHashes[0]), [keys.user('bob'), keys.user('carol')],
      'bob\'s second call went out before his first was answered (or carol waited for bob)');
    replies.shift()!();
    await toBob[0];
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(calls.map((call) => call.userHashes[0]), [keys.user('bob'), keys.user('carol'), keys.user('bob')]);
    for (const reply of replies.splice(0)) reply();
    await Promise.all([...toBob, toCarol]);
    assert.deepEqual(calls.filter((call) => call.userHashes[0] === keys.user('bob')).map((call) => call.runs[0]![3].split('\r\n').length - 1),
      [1000, 500]);
  });

  it('fails every DM of a batch Redis ran past its deadline, or that could not be sent', async () => {
    const unavailable = (error: unknown) => error instanceof BackplaneUnavailableError;
    const expired = new DirectMessageBatcher(recordingScripts({}, [], async () => [-1]), keys, options(true));
    for (const result of await Promise.allSettled([expired.send(alice, 'alice', 'bob', 'a\r\n', asIs), expired.send(alice, 'alice', 'carol', 'b\r\n', asIs)])) {
      assert.equal(result.status, 'rejected');
      assert.ok(unavailable((result as PromiseRejectedResult).reason));
    }
    const down = new DirectMessageBatcher(recordingScripts({}, [], async () => { throw new Error('Connection is closed.'); }), keys, options(true));
    const results = await Promise.allSettled([down.send(alice, 'alice', 'bob', 'a\r\n', asIs)]);
    assert.ok(results[0]!.status === 'rejected' && unavailable(results[0]!.reason));
  });
});
