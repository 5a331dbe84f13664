import { RedisCluster } from '../helpers/redis-cluster.js';
import { backplaneContract } from './backplane.contract.js';
import { redisHarness } from './redis-harness.js';

// The same contract on a Redis Cluster of 3 primaries and 3 replicas: shard channels, every
// script in one slot, room fan-out by the sender's worker, per-sender order across nodes.

backplaneContract('redis cluster', async () => {
  const cluster = await RedisCluster.start();
  return redisHarness({ REDIS_CLUSTER_NODES: cluster.seeds.join(',') }, () => cluster.stop());
});
