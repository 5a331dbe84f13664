--[[
  One shard of the room index at one moment: every room's display name and member count.

  KEYS[1] shard's room names hash
  KEYS[2] shard's room sizes hash

  Returns { room key, display name, member count, … }.
]]
local names = redis.call('HGETALL', KEYS[1])
local reply = {}
for i = 1, #names, 2 do
  reply[#reply + 1] = names[i]
  reply[#reply + 1] = names[i + 1]
  reply[#reply + 1] = redis.call('HGET', KEYS[2], names[i]) or '0'
end
return reply
