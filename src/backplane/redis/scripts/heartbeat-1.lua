--[[
  A worker's heartbeat: keeps (or first makes) its liveness key, proves a write, publishes a
  probe to its own subscriber, and reads Redis' clock, all in one round trip.

  KEYS[1] the worker's liveness key
  ARGV[1] worker id
  ARGV[2] key lifetime (ms): the worker's lease
  ARGV[3] the worker's probe channel (in the key's slot)
  ARGV[4] the publish command: PUBLISH, or SPUBLISH on Redis Cluster
  ARGV[5] 'renew' (the key must still exist) or 'register' (the key must not exist yet)

  Returns { status, seconds, microseconds } with Redis' TIME; status 1 when the key was kept
  or made, 0 when it was gone (renew: this worker was taken for dead) or taken (register).
]]
local set
if ARGV[5] == 'renew' then
  set = redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2], 'XX')
else
  set = redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2], 'NX')
end
local now = redis.call('TIME')
if not set then
  return { 0, now[1], now[2] }
end
redis.call(ARGV[4], ARGV[3], 'probe')
return { 1, now[1], now[2] }
