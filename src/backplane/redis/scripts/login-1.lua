--[[
  Claims a username for one connection, if nobody holds it.

  KEYS[1] user hash
  ARGV[1] display name
  ARGV[2] worker id
  ARGV[3] connection id
  ARGV[4] login time (ms since the epoch)

  Returns 1 when claimed, 0 when the name is already taken.
]]
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
redis.call('HSET', KEYS[1], 'name', ARGV[1], 'worker', ARGV[2], 'conn', ARGV[3], 'since', ARGV[4])
return 1
