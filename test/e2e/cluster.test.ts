import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ChatProcess } from '../helpers/chat-process.js';
import { LineClient, loggedIn } from '../helpers/client.js';
import { chatStateKeys, startRedis, type TestRedis } from '../helpers/redis.js';
import { waitFor } from '../helpers/wait.js';
import { protocolSuite } from './protocol.suite.js';

// Two instances of two workers each on one Redis: the smallest real cluster.

function startCluster(redis: TestRedis, prefix: string, extraEnv: Record<string, string> = {}): Promise<ChatProcess[]> {
  return ChatProcess.startPair({ REDIS_URL: redis.url, REDIS_PREFIX: prefix, ...extraEnv });
}

describe('cluster: two instances × two workers on one Redis', () => {
  let redis: TestRedis;
  before(async () => { redis = await startRedis(); });
  after(async () => redis?.stop());

  protocolSuite('cluster mode', async () => {
    const instances = await startCluster(redis, 'protocol:');
    return {
      ports: instances.map((chat) => chat.port),
      stop: async () => { await Promise.all(instances.map((chat) => chat.stop())); },
    };
  });

  describe('under concurrency', () => {
    let instances: ChatProcess[];
    let ports: number[];
    const prefix = 'load:';
    before(async () => {
      // Throughput and ordering under pipelining, not the flood limit, are tested here.
      instances = await startCluster(redis, prefix, { RATE_PER_SEC: '0' });
      ports = instances.map((chat) => chat.port);
    });
    after(async () => {
      const codes = await Promise.all(instances.map((chat) => chat.stop()));
      assert.deepEqual(codes, [0, 0]);
    });

    it('says in its first log line that it runs on Redis and how to scale out', () => {
      const first = instances[0]!.logs[0]!;
      assert.equal(first.mode, 'redis');
      assert.match(first.msg, /start more instances with the same Redis/);
    });

    it('reports every instance alive and ready, each of its workers serving with Redis reachable', async () => {
      for (const chat of instances) {
        assert.equal((await chat.probe('/healthz')).status, 200);
        const ready = await chat.probe('/readyz');
        assert.equal(ready.status, 200);
        const workers = ready.body.workers as { state: string; sharedState: string }[];
        assert.deepEqual(workers.map((worker) => [worker.state, worker.sharedState]), [['serving', 'ok'], ['serving', 'ok']]);
      }
    });

    it('gives exactly one OK in each of 20 races for one name from both instances', async () => {
      const clients = await Promise.all(Array.from({ length: 6 }, (_, i) => LineClient.connect(ports[i % 2]!)));
      try {
        for (let race = 0; race < 20; race++) {
          const name = `racer${race}`;
          for (const client of clients) client.send(`LOGIN ${name}`);
          const replies = await Promise.all(clients.map((client) => client.nextLine()));
          assert.equal(replies.filter((reply) => reply === 'OK').length, 1, `race ${race}: ${replies.join(' | ')}`);
          assert.equal(replies.filter((reply) => reply === `ERROR ${name} IS ALREADY TAKEN`).length, 5);
          const winner = clients[replies.indexOf('OK')]!;
          await winner.command('LOGOUT', 'OK');
        }
      } finally {
        for (const client of clients) client.destroy();
      }
    });

    it('delivers 500 pipelined DMs across instances in order, none lost or repeated', async () => {
      const sender = await loggedIn(ports[0]!, 'dm-sender');
      const receiver = await loggedIn(ports[1]!, 'dm-receiver');
      try {
        const count = 500;
        sender.send(...Array.from({ length: count }, (_, i) => `MSG dm-receiver message ${i}`));
        assert.deepEqual(await sender.take(count), Array(count).fill('OK'));
        const got = await receiver.take(count);
        assert.deepEqual(got, Array.from({ length: count }, (_, i) => `GOTUSERMSG dm-sender message ${i}`));
        await receiver.expectSilence(200);
      } finally {
        sender.destroy();
        receiver.destroy();
      }
    });

    it('brings 50 room messages to all 200 members, in order, on every worker', async () => {
      const members = await Promise.all(Array.from({ length: 200 }, (_, i) => loggedIn(ports[i % 2]!, `member${i}`)));
      try {
        await Promise.all(members.map((member) => member.command('JOIN #Crowd', 'OK')));
        const sender = members[0]!;
        sender.send(...Array.from({ length: 50 }, (_, i) => `MSG #crowd update ${i}`));
        const expected = Array.from({ length: 50 }, (_, i) => `GOTROOMMSG member0 #Crowd update ${i}`);
        const senderLines = await sender.take(100);
        assert.deepEqual(senderLines.filter((line) => line !== 'OK'), expected);
        assert.deepEqual(senderLines.filter((line) => line === 'OK').length, 50);
        await Promise.all(members.slice(1).map(async (member) => assert.deepEqual(await member.take(50), expected)));
        for (const chat of instances) {
          assert.equal(chat.workersThatLogged('connection opened').size, 2, 'both workers of each instance served clients');
        }
      } finally {
        for (const member of members) member.destroy();
      }
    });

    it('leaves no user, room or session in Redis once every client is gone', async () => {
      const [alice, bob] = await Promise.all([loggedIn(ports[0]!, 'Alice'), loggedIn(ports[1]!, 'Bob')]);
      await alice.command('JOIN #left', 'OK');
      await bob.command('JOIN #left', 'OK');
      alice.destroy();
      bob.destroy();
      await waitFor('every user, room and session key to be gone', async () =>
        (await chatStateKeys(redis.client, prefix)).length === 0);
    });
  });

  describe('with CONNECTION_DISTRIBUTION=kernel', () => {
    it('takes a burst of clients straight from the kernel, and they all talk', async () => {
      const chat = await ChatProcess.start({ REDIS_URL: redis.url, REDIS_PREFIX: 'kernel:', CONNECTION_DISTRIBUTION: 'kernel' }, 2);
      const clients: LineClient[] = [];
      try {
        assert.equal(chat.logs[0]!.connectionDistribution, 'kernel');
        clients.push(...await Promise.all(Array.from({ length: 40 }, (_, i) => loggedIn(chat.port, `k${i}`))));
        clients.forEach((client, i) => client.send(`MSG k${(i + 1) % clients.length} from ${i}`));
        await Promise.all(clients.map(async (client, i) => {
          const from = (i + clients.length - 1) % clients.length;
          assert.deepEqual((await client.take(2)).sort(), [`GOTUSERMSG k${from} from ${from}`, 'OK']);
        }));
      } finally {
        for (const client of clients) client.destroy();
        assert.equal(await chat.stop(), 0);
      }
    });
  });
});
