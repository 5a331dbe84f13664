--[[
  Claims a username for one login, if nobody holds it. Fenced: does nothing once Redis' clock
  passes the deadline, so a LOGIN answered SERVICE UNAVAILABLE can never take effect later.

  KEYS[1] user hash
  ARGV[1] display name
  ARGV[2] worker id
  ARGV[3] login id
  ARGV[4] login time (ms since the epoch)
  ARGV[5] deadline (ms, Redis' clock; 0: none)
  ARGV[6] a login id this claim may replace ('' : none): the same session's identity before
          its worker was taken for dead and came back

  Returns 1 when claimed (or already held by this very login, so restoring is safe to repeat),
  0 when another login holds the name, -1 when the deadline had passed.
]]
--- @include "deadline"
if pastDeadline(tonumber(ARGV[5])) then
  return -1
end
local holder = redis.call('HGET', KEYS[1], 'login')
if holder and holder ~= ARGV[3] and holder ~= ARGV[6] then
  return 0
end
redis.call('HSET', KEYS[1], 'name', ARGV[1], 'worker', ARGV[2], 'login', ARGV[3], 'since', ARGV[4])
return 1
