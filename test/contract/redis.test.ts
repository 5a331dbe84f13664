import { startRedis } from '../helpers/redis.js';
import { backplaneContract } from './backplane.contract.js';
import { redisHarness } from './redis-harness.js';

backplaneContract('redis', async () => {
  const redis = await startRedis();
  return redisHarness({ REDIS_URL: redis.url }, () => redis.stop());
});
