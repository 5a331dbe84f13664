import { pino } from 'pino';
import { RedisBackplane } from '../../src/backplane/redis/index.js';
import type { Backplane } from '../../src/backplane/types.js';
import { loadConfig } from '../../src/config.js';
import type { BackplaneHarness } from './backplane.contract.js';

/**
 * The contract's nodes on a running Redis of any topology: `environment` is what chatline would
 * be started with (REDIS_URL, REDIS_CLUSTER_NODES, …); `stop` takes the Redis down at the end.
 */
export function redisHarness(environment: Record<string, string>, stop: () => Promise<void>): BackplaneHarness {
  const open: Backplane[] = [];
  let test = 0;
  let prefix = '';
  const closeAll = () => Promise.all(open.splice(0).map((backplane) => backplane.close()));
  return {
    async reset() {
      await closeAll();
      // A fresh prefix per test: the same isolation a flush gives, without racing late writes.
      prefix = `contract${++test}:`;
    },
    async node(limits) {
      const backplane = await RedisBackplane.connect({
        redis: loadConfig({ ...environment, REDIS_PREFIX: prefix }).redis!,
        ...limits, nodeTtlMs: 10_000, log: pino({ level: 'silent' }),
      });
      open.push(backplane);
      return backplane;
    },
    async close() {
      await closeAll();
      await stop();
    },
  };
}
