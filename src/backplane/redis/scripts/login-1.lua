--[[
  Claims a username for one connection, if nobody holds it.

  KEYS[1] user hash
  ARGV[1] display name
  ARGV[2] worker id
  ARGV[3] connection id
  ARGV[4] login time (ms since the epoch)

  Returns 1 when claimed (or already held by this very connection, so re-registering after
  a Redis restart is safe to repeat), 0 when another connection holds the name.
]]
local holder = redis.call('HGET', KEYS[1], 'conn')
if holder then
  return holder == ARGV[3] and 1 or 0
end
redis.call('HSET', KEYS[1], 'name', ARGV[1], 'worker', ARGV[2], 'conn', ARGV[3], 'since', ARGV[4])
return 1
