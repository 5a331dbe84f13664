import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { RedisKeys } from '../../src/backplane/redis/keys.js';
import { ChatProcess } from '../helpers/chat-process.js';
import { type LineClient, loggedIn } from '../helpers/client.js';
import { sample, scrape } from '../helpers/metrics.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import { RoomMember as Member } from '../helpers/room-member.js';
import { waitFor } from '../helpers/wait.js';

// Room delivery through room feeds (one publish per room message, each worker writing to its own
// members), on two instances of two workers: per-sender order across DMs and rooms, membership
// as of the instant Redis ran the message (no gap, no duplicate), feeds held while a worker has
// members and dropped after, a lost feed subscription made again, and a 5000-member room.

const PREFIX = 'fanout:';
const keys = new RedisKeys(PREFIX);

/** The numbers a member got form one unbroken run, in order: no gap, no duplicate. */
function assertContiguous(numbers: number[], what: string): void {
  for (let i = 1; i < numbers.length; i++) assert.equal(numbers[i], numbers[i - 1]! + 1, `${what}: ${numbers.slice(Math.max(0, i - 3), i + 2)}`);
}

describe('room fan-out through room feeds (2 instances × 2 workers)', () => {
  let redis: TestRedis;
  let instances: ChatProcess[];
  const clients: LineClient[] = [];
  before(async () => {
    redis = await startRedis();
    instances = await ChatProcess.startPair({ REDIS_URL: redis.url, REDIS_PREFIX: PREFIX, RATE_PER_SEC: '0' });
  });
  after(async () => {
    for (const client of clients) client.destroy();
    await Promise.all(instances?.map((chat) => chat.stop()) ?? []);
    await redis?.stop();
  });
  const login = async (name: string, instance: number) => {
    const client = await loggedIn(instances[instance % 2]!.port, name);
    clients.push(client);
    return client;
  };

  it('keeps one sender\'s DMs and room messages to one recipient in order, across instances', async () => {
    const sender = await login('orderly', 0);
    const recipient = await login('reader', 1);
    await sender.command('JOIN #mixed', 'OK');
    await recipient.command('JOIN #mixed', 'OK');
    const count = 1500;
    const commands = Array.from({ length: count }, (_, i) => (i % 3 === 0 ? `MSG #mixed ${i}` : `MSG reader ${i}`));
    sender.send(...commands);
    await sender.take(count + count / 3, 20_000);
    const got = await recipient.take(count, 20_000);
    assert.deepEqual(got.map((line) => Number(line.slice(line.lastIndexOf(' ') + 1))), Array.from({ length: count }, (_, i) => i));
  });

  it('gives a member who joins while messages flow exactly the messages after its join', async () => {
    const sender = await login('speaker', 0);
    await sender.command('JOIN #race', 'OK');
    const count = 2000;
    sender.send(...Array.from({ length: count }, (_, i) => `MSG #race ${i}`));
    // Joiners on both instances, arriving while the messages are still being sent.
    const joiners = await Promise.all(Array.from({ length: 6 }, (_, i) => Member.join(instances[i % 2]!.port, `joiner${i}`, '#race')));
    await sender.take(2 * count, 20_000);
    await sender.command('MSG #race end', 'OK', 'GOTROOMMSG speaker #race end');
    for (const [i, joiner] of joiners.entries()) {
      // "end" reads as NaN: every joiner joined before it was sent, so each must hear it.
      await waitFor(`joiner${i} to hear the end`, () => joiner.numbers.some(Number.isNaN));
      const numbers = joiner.numbers.filter((n) => !Number.isNaN(n));
      assertContiguous(numbers, `joiner${i}`);
      if (numbers.length > 0) assert.equal(numbers.at(-1), count - 1, `joiner${i} missed the last messages`);
      joiner.socket.destroy();
    }
  });

  it('gives a member who leaves while messages flow exactly the messages before its part, and drops the feed', async () => {
    const sender = await login('talker', 0);
    await sender.command('JOIN #exit', 'OK');
    // The only member on instance 1: its worker holds the feed just for it.
    const leaver = await login('leaver', 1);
    await leaver.command('JOIN #exit', 'OK');
    const feed = keys.roomFeed('#exit');
    const subscribers = async () => ((await redis.client.pubsub('NUMSUB', feed)) as [string, number])[1];
    assert.equal(await subscribers(), 2, 'one feed subscription per worker holding members');
    const count = 2000;
    sender.send(...Array.from({ length: count }, (_, i) => `MSG #exit ${i}`));
    await new Promise((resolve) => setTimeout(resolve, 20));
    leaver.send('PART #exit');
    await sender.take(2 * count, 20_000);
    const lines: string[] = [];
    for (let line = await leaver.nextLine(); line !== 'OK'; line = await leaver.nextLine()) lines.push(line);
    await leaver.expectSilence(300);
    const numbers = lines.map((line) => Number(line.slice(line.lastIndexOf(' ') + 1)));
    assert.equal(numbers[0], 0);
    assertContiguous(numbers, 'leaver');
    await waitFor('the leaver\'s worker to drop the feed', async () => (await subscribers()) === 1);
  });

  it('makes a killed feed subscription again and delivers again, counted', async () => {
    const sender = await login('poster', 0);
    const listener = await login('listener', 1);
    await sender.command('JOIN #again', 'OK');
    await listener.command('JOIN #again', 'OK');
    await redis.client.call('CLIENT', 'KILL', 'TYPE', 'pubsub');
    await waitFor('every worker to subscribe again', async () => {
      const counts = await Promise.all(instances.map(async (chat) => sample(await scrape(chat.healthPort), 'chatline_subscriber_resubscribes_total')));
      return counts.every((count) => count >= 2);
    }, 10_000);
    await sender.command('MSG #again back', 'OK', 'GOTROOMMSG poster #again back');
    await listener.expect('GOTROOMMSG poster #again back');
  });

  it('writes a window of room messages sent together to a member on another instance in one write', async () => {
    // What big rooms cost is a write per member per batch: messages that travel apart are each
    // a write to every member (turn-writes.ts).
    const sender = await login('batcher', 0);
    const member = await login('batched', 1);
    await sender.command('JOIN #window', 'OK');
    await member.command('JOIN #window', 'OK');
    let chunks = 0;
    member.socket.on('data', (text: string) => { if (text.includes('GOTROOMMSG')) chunks++; });
    const windows = 20;
    const size = 4;
    const writesPerWindow: number[] = [];
    for (let w = 0; w < windows; w++) {
      const before = chunks;
      sender.send(...Array.from({ length: size }, (_, i) => `MSG #window ${w * size + i}`));
      await sender.take(2 * size);
      const got = await member.take(size);
      assert.deepEqual(got, Array.from({ length: size }, (_, i) => `GOTROOMMSG batcher #window ${w * size + i}`));
      writesPerWindow.push(chunks - before);
    }
    // A loaded machine may split the odd window; the window travelling whole is the rule.
    const whole = writesPerWindow.filter((writes) => writes === 1).length;
    assert.ok(whole >= windows * 0.8, `windows that came in one write: ${whole} of ${windows} (${writesPerWindow.join(' ')})`);
  });

  it('brings every message of a steady stream to each of 5000 members, in order, without Redis cutting a subscriber', async () => {
    const members: Member[] = [];
    for (let i = 0; i < 5000; i += 250) {
      members.push(...await Promise.all(Array.from({ length: 250 }, (_, j) => Member.join(instances[(i + j) % 2]!.port, `big${i + j}`, '#huge'))));
    }
    const sender = await login('announcer', 0);
    await sender.command('JOIN #huge', 'OK');
    const resubscribesBefore = await Promise.all(instances.map(async (chat) => sample(await scrape(chat.healthPort), 'chatline_subscriber_resubscribes_total')));
    const messages = 40;
    for (let i = 0; i < messages; i++) {
      sender.send(`MSG #huge ${i}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    await sender.take(2 * messages, 20_000);
    await waitFor('every member to get every message', () => members.every((member) => member.numbers.length >= messages), 60_000);
    for (const member of members) assert.deepEqual(member.numbers, Array.from({ length: messages }, (_, i) => i));
    const resubscribesAfter = await Promise.all(instances.map(async (chat) => sample(await scrape(chat.healthPort), 'chatline_subscriber_resubscribes_total')));
    assert.deepEqual(resubscribesAfter, resubscribesBefore, 'no subscriber was cut');
    for (const member of members) member.socket.destroy();
  });
});
