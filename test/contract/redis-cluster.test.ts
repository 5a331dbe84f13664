import { pino } from 'pino';
import { loadConfig } from '../../src/config.js';
import { RedisBackplane } from '../../src/backplane/redis/index.js';
import type { Backplane } from '../../src/backplane/types.js';
import { RedisCluster } from '../helpers/redis-cluster.js';
import { backplaneContract } from './backplane.contract.js';

// The same contract on a Redis Cluster of 3 primaries and 3 replicas: shard channels, every
// script in one slot, room fan-out by the sender's worker, per-sender order across nodes.

backplaneContract('redis cluster', async () => {
  const cluster = await RedisCluster.start();
  const open: Backplane[] = [];
  let test = 0;
  let prefix = '';
  return {
    async reset() {
      await Promise.all(open.splice(0).map((backplane) => backplane.close()));
      prefix = `cluster${++test}:`;
    },
    async node(limits) {
      const backplane = await RedisBackplane.connect({
        redis: loadConfig({ REDIS_CLUSTER_NODES: cluster.seeds.join(','), REDIS_PREFIX: prefix }).redis!,
        ...limits, nodeTtlMs: 10_000, log: pino({ level: 'silent' }),
      });
      open.push(backplane);
      return backplane;
    },
    async close() {
      await Promise.all(open.splice(0).map((backplane) => backplane.close()));
      await cluster.stop();
    },
  };
});
