import { pino } from 'pino';
import { RedisBackplane } from '../../src/backplane/redis/index.js';
import type { Backplane } from '../../src/backplane/types.js';
import { startRedis } from '../helpers/redis.js';
import { backplaneContract, recordingSink, type TestNode } from './backplane.contract.js';

backplaneContract('redis', async () => {
  const redis = await startRedis();
  const open: Backplane[] = [];
  let test = 0;
  let prefix = '';
  return {
    async reset() {
      await Promise.all(open.splice(0).map((backplane) => backplane.close()));
      // A fresh prefix per test: the same isolation a flush gives, without racing late writes.
      prefix = `contract${++test}:`;
    },
    async node(maxRoomsPerUser = 100): Promise<TestNode> {
      const inbox = new Map<string, string[]>();
      const backplane = await RedisBackplane.connect({
        url: redis.url, prefix, workerId: `w${open.length}`, maxRoomsPerUser, deliver: recordingSink(inbox),
        nodeTtlMs: 10_000, liveSessions: () => [], log: pino({ level: 'silent' }),
      });
      open.push(backplane);
      return { inbox, backplane };
    },
    async close() {
      await Promise.all(open.splice(0).map((backplane) => backplane.close()));
      await redis.stop();
    },
  };
});
