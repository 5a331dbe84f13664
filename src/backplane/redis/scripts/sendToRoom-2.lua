--[[
  Fans a room message out to every member but the sender, if the sender is a member. Checking
  membership and publishing in one step means a member who left never gets it and one who
  joined before it always does.

  KEYS[1] room members hash (member key -> connection id)
  KEYS[2] room display name
  ARGV[1] sender's member key
  ARGV[2] sender's connection id
  ARGV[3] the line up to the room name
  ARGV[4] the line after the room name, with its terminator
  ARGV[5] channel name before the member key
  ARGV[6] channel name after the member key
  ARGV[7] the room as the sender spelled it (used only if the display name was lost)

  Publishes "<connection id> <line>" to each other member's channel. Returns the room's
  display name, or false when there is no such room or the sender is not in it.
]]
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then
  return false
end
local roomName = redis.call('GET', KEYS[2]) or ARGV[7]
local line = ARGV[3] .. roomName .. ARGV[4]
local members = redis.call('HGETALL', KEYS[1])
for i = 1, #members, 2 do
  local member = members[i]
  if member ~= ARGV[1] then
    redis.call('PUBLISH', ARGV[5] .. member .. ARGV[6], members[i + 1] .. ' ' .. line)
  end
end
return roomName
