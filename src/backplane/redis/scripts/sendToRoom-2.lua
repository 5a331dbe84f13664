--[[
  A room message, in the room's shard slot: checks that the sender is a member and, in the
  same step, hands the message on, so a member who left never gets it and one who joined
  before it always does. Fenced.
  - On one Redis primary ('feed'): one publish to the room's feed, whatever the room's size;
    every worker holding members reads it between the joins and parts around it and writes
    it to its own members. Redis' cost is one message per worker, not per member.
  - On Redis Cluster ('members'): returns the members, and the sender's worker publishes to
    each member's inbox (see fanOutInOrder in index.ts for why).

  KEYS[1] room members hash (member key -> "<login id> <display name>")
  KEYS[2] shard's room names hash
  ARGV[1] sender's member key
  ARGV[2] sender's login id
  ARGV[3] room key
  ARGV[4] deadline (ms, Redis' clock; 0: none)
  ARGV[5] 'feed' or 'members'
  ARGV[6] the line up to the room name
  ARGV[7] the line after the room name, with its terminator
  ARGV[8] the room's feed channel
  ARGV[9] the publish command

  Returns { 1, room name } when sent ('feed'), { 1, room name, member key, entry, … } with
  every other member ('members'), { 0 } when there is no such room or the sender is not in it,
  { -1 } when the deadline had passed.
]]
--- @include "deadline"
if pastDeadline(tonumber(ARGV[4])) then
  return { -1 }
end
local entry = redis.call('HGET', KEYS[1], ARGV[1])
if not entry or string.match(entry, '^(%S+)') ~= ARGV[2] then
  return { 0 }
end
local roomName = redis.call('HGET', KEYS[2], ARGV[3]) or ARGV[3]
if ARGV[5] == 'feed' then
  redis.call(ARGV[9], ARGV[8], 'M ' .. ARGV[2] .. ' ' .. ARGV[6] .. roomName .. ARGV[7])
  return { 1, roomName }
end
local reply = { 1, roomName }
local members = redis.call('HGETALL', KEYS[1])
for i = 1, #members, 2 do
  if members[i] ~= ARGV[1] then
    reply[#reply + 1] = members[i]
    reply[#reply + 1] = members[i + 1]
  end
end
return reply
