import { RedisSentinel } from '../helpers/redis-sentinel.js';
import { backplaneContract } from './backplane.contract.js';
import { redisHarness } from './redis-harness.js';

// The same contract on a Sentinel-managed primary: the clients find it through the sentinels.

backplaneContract('redis sentinel', async () => {
  const sentinel = await RedisSentinel.start('chat');
  return redisHarness({ REDIS_SENTINELS: sentinel.sentinels.join(','), REDIS_SENTINEL_NAME: 'chat' }, () => sentinel.stop());
});
