import { pino } from 'pino';
import { loadConfig } from '../../src/config.js';
import { RedisBackplane } from '../../src/backplane/redis/index.js';
import type { Backplane } from '../../src/backplane/types.js';
import { startRedis } from '../helpers/redis.js';
import { backplaneContract } from './backplane.contract.js';

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
    async node(limits) {
      const backplane = await RedisBackplane.connect({
        redis: loadConfig({ REDIS_URL: redis.url, REDIS_PREFIX: prefix }).redis!,
        ...limits, nodeTtlMs: 10_000, log: pino({ level: 'silent' }),
      });
      open.push(backplane);
      return backplane;
    },
    async close() {
      await Promise.all(open.splice(0).map((backplane) => backplane.close()));
      await redis.stop();
    },
  };
});
