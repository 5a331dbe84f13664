import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ChatProcess } from '../helpers/chat-process.js';
import { type LineClient, loggedIn } from '../helpers/client.js';
import { RedisKeys } from '../../src/backplane/redis/keys.js';
import { chatStateKeys, startRedis, type TestRedis } from '../helpers/redis.js';

// SIGTERM to an instance: every client is told, logged out in Redis, and the process exits 0;
// the other instance's clients never notice. A restart then serves the same names again.

const PREFIX = 'drain:';
const keys = new RedisKeys(PREFIX);

describe('SIGTERM to an instance with 100 clients', () => {
  let redis: TestRedis;
  let leaving: ChatProcess;
  let staying: ChatProcess;
  const clients: LineClient[] = [];

  before(async () => {
    redis = await startRedis();
    const env = { REDIS_URL: redis.url, REDIS_PREFIX: PREFIX, SHUTDOWN_GRACE_MS: '5000' };
    [leaving, staying] = await ChatProcess.startPair(env);
  });
  after(async () => {
    for (const client of clients) client.destroy();
    await Promise.all([leaving?.stop(), staying?.stop()]);
    await redis?.stop();
  });

  it('says goodbye to each client, releases them all, exits 0, and leaves the rest alone', async () => {
    const drained = await Promise.all(Array.from({ length: 100 }, (_, i) => loggedIn(leaving.port, `drained${i}`)));
    clients.push(...drained);
    await Promise.all(drained.map((client, i) => client.command(`JOIN #room${i % 7}`, 'OK')));
    const [stayer, friend] = await Promise.all([loggedIn(staying.port, 'stayer'), loggedIn(staying.port, 'friend')]);
    clients.push(stayer, friend);
    await stayer.command('JOIN #room0', 'OK');

    const code = await leaving.stop('SIGTERM');
    assert.equal(code, 0);
    await Promise.all(drained.map(async (client) => {
      assert.equal(await client.nextLine(), 'ERROR SERVER SHUTTING DOWN');
      await client.closed;
    }));
    const left = (await chatStateKeys(redis.client, PREFIX)).filter((key) => !key.includes('{worker:'));
    const [roomNames, roomSizes] = keys.roomIndex('#room0');
    assert.deepEqual(left, [
      keys.user('friend'), keys.userRooms('stayer'), keys.user('stayer'), keys.roomMembers('#room0'), roomNames, roomSizes,
    ].sort());
    assert.deepEqual(await redis.client.hkeys(keys.roomMembers('#room0')), ['stayer']);
    assert.equal(await redis.client.scard(keys.workers()), 2, 'only the two workers of the other instance are registered');

    await stayer.command('MSG friend unaffected', 'OK');
    await friend.expect('GOTUSERMSG stayer unaffected');

    // The rolling restart's new instance takes the same names.
    leaving = await ChatProcess.start({ REDIS_URL: redis.url, REDIS_PREFIX: PREFIX }, 2);
    const back = await loggedIn(leaving.port, 'drained0');
    clients.push(back);
    await back.command('JOIN #room0', 'OK');
    await back.command('MSG #room0 back', 'OK', 'GOTROOMMSG drained0 #room0 back');
    await stayer.expect('GOTROOMMSG drained0 #room0 back');
  });
});
