--[[
  Removes a member from a room, in the room's slot; a room left empty stops existing, so
  its spelling is forgotten too.

  KEYS[1] room members hash
  KEYS[2] room display name
  ARGV[1] member key
  ARGV[2] connection id (only this connection's membership is removed)

  Returns 1 when the member left, 0 when this connection was not a member.
]]
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then
  return 0
end
redis.call('HDEL', KEYS[1], ARGV[1])
if redis.call('HLEN', KEYS[1]) == 0 then
  redis.call('DEL', KEYS[2])
end
return 1
