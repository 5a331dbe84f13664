--[[
  Removes a member from a room, in the room's shard slot; a room left empty stops existing, so
  it leaves the shard's index and its spelling is forgotten. Announces the part on the room's
  feed. Fenced.

  KEYS[1] room members hash
  KEYS[2] shard's room names hash
  KEYS[3] shard's room sizes hash
  ARGV[1] member key
  ARGV[2] login id (only this login's membership is removed)
  ARGV[3] another login id whose membership may be removed too ('': none), the session's
          identity before its worker was taken for dead and came back
  ARGV[4] room key
  ARGV[5] deadline (ms, Redis' clock; 0: none)
  ARGV[6] the room's feed channel ('': no feed)
  ARGV[7] the publish command

  Returns 1 when the member left, 0 when this login was not a member, -1 when the deadline had passed.
]]
--- @include "deadline"
if pastDeadline(tonumber(ARGV[5])) then
  return -1
end
local current = redis.call('HGET', KEYS[1], ARGV[1])
if not current then
  return 0
end
local holder = string.match(current, '^(%S+)')
if holder ~= ARGV[2] and holder ~= ARGV[3] then
  return 0
end
redis.call('HDEL', KEYS[1], ARGV[1])
if redis.call('HINCRBY', KEYS[3], ARGV[4], -1) <= 0 then
  redis.call('HDEL', KEYS[2], ARGV[4])
  redis.call('HDEL', KEYS[3], ARGV[4])
end
if ARGV[6] ~= '' then
  redis.call(ARGV[7], ARGV[6], 'P ' .. holder)
end
return 1
