--[[
  First step of JOIN, in the user's slot: records the room in the user's room index, within
  the per-user limit. The index is kept a superset of real memberships (added to before the
  room, removed from after it), so cleanup that walks it never misses a room. Fenced.

  KEYS[1] user hash
  KEYS[2] user's room index (set of room keys)
  ARGV[1] login id of the caller
  ARGV[2] room key
  ARGV[3] most rooms a user may be in
  ARGV[4] deadline (ms, Redis' clock; 0: none)

  Returns 2 when added, 1 when already there, 0 when over the limit, -1 when the deadline had
  passed, -2 when the caller does not hold the name.
]]
--- @include "deadline"
if pastDeadline(tonumber(ARGV[4])) then
  return -1
end
if redis.call('HGET', KEYS[1], 'login') ~= ARGV[1] then
  return -2
end
if redis.call('SISMEMBER', KEYS[2], ARGV[2]) == 1 then
  return 1
end
if redis.call('SCARD', KEYS[2]) >= tonumber(ARGV[3]) then
  return 0
end
redis.call('SADD', KEYS[2], ARGV[2])
return 2
