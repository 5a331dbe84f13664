--[[
  Delivers a batch of direct messages: every DM a worker accepted in one event-loop turn.
  For each recipient, the lookup and the publish are one step, so the lines go to the
  connection that holds the name at that instant. Called with the key count first
  (the "-n" in the file name): the keys span slots, so this needs a single Redis primary.

  KEYS[i]    recipient i's user hash, for i = 1..n
  ARGV[i]    recipient i's channel
  ARGV[n+i]  every line for recipient i, complete and in the order they were sent

  Publishes "<connection id> <lines>" to each recipient that is logged in. Returns an array
  holding, for each recipient, 1 when published and 0 when the user is not logged in.
]]
local n = #KEYS
local sent = {}
for i = 1, n do
  local conn = redis.call('HGET', KEYS[i], 'conn')
  if conn then
    redis.call('PUBLISH', ARGV[i], conn .. ' ' .. ARGV[n + i])
    sent[i] = 1
  else
    sent[i] = 0
  end
end
return sent
