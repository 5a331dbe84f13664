-- A fenced script does nothing once Redis' clock has passed its deadline: a command its caller
-- gave up on (and answered SERVICE UNAVAILABLE) can never take effect later.
-- deadline: ms on Redis' clock; 0 means none.
local function pastDeadline(deadline)
  if deadline <= 0 then
    return false
  end
  local now = redis.call('TIME')
  return tonumber(now[1]) * 1000 + tonumber(now[2]) / 1000 > deadline
end
