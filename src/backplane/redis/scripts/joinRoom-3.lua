--[[
  Second step of JOIN, in the room's shard slot: adds the member, creating the room if needed,
  keeps the shard's index of room names and sizes exact, and announces the join on the room's
  feed, so that every worker reading the feed sees it between the messages before and after.
  The caller holds the name (checked by reserveRoom), so an entry for the same name under
  another login is left over from an earlier session and is replaced. Fenced.

  KEYS[1] room members hash (member key -> "<login id> <display name>")
  KEYS[2] shard's room names hash (room key -> display spelling)
  KEYS[3] shard's room sizes hash (room key -> member count)
  ARGV[1] member key
  ARGV[2] login id
  ARGV[3] member's display name
  ARGV[4] room key
  ARGV[5] room name as the caller spelled it (kept only if this creates the room)
  ARGV[6] most members a room may hold
  ARGV[7] deadline (ms, Redis' clock; 0: none)
  ARGV[8] the room's feed channel ('': no feed, on Redis Cluster)
  ARGV[9] the publish command

  Returns 1 when joined, 0 when this login is already a member, -1 when the deadline had
  passed, -3 when the room is full.
]]
--- @include "deadline"
if pastDeadline(tonumber(ARGV[7])) then
  return -1
end
local entry = ARGV[2] .. ' ' .. ARGV[3]
local current = redis.call('HGET', KEYS[1], ARGV[1])
if current == entry then
  return 0
end
if not current then
  if redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[6]) then
    return -3
  end
  redis.call('HINCRBY', KEYS[3], ARGV[4], 1)
end
redis.call('HSET', KEYS[1], ARGV[1], entry)
redis.call('HSETNX', KEYS[2], ARGV[4], ARGV[5])
if ARGV[8] ~= '' then
  redis.call(ARGV[9], ARGV[8], 'J ' .. ARGV[2])
end
return 1
