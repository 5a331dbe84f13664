--[[
  Delivers a direct message if the recipient is logged in. The lookup and the publish are one
  step, so the message goes to the connection that holds the name at that instant.

  KEYS[1] recipient's user hash
  ARGV[1] recipient's channel
  ARGV[2] the complete line to deliver

  Publishes "<connection id> <line>". Returns 1 when sent, 0 when the user is not logged in.
]]
local conn = redis.call('HGET', KEYS[1], 'conn')
if not conn then
  return 0
end
redis.call('PUBLISH', ARGV[1], conn .. ' ' .. ARGV[2])
return 1
