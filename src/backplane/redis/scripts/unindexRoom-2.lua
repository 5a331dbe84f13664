--[[
  Last step of PART, in the user's slot: drops the room from the user's room index, after the
  membership itself is gone.

  KEYS[1] user hash
  KEYS[2] user's room index
  ARGV[1] login id of the caller
  ARGV[2] room key
  ARGV[3] deadline (ms, Redis' clock; 0: none): the PART's, so that this never runs after a
          part that came too late to run

  Returns 1 when dropped, 0 when it was not there or the caller does not hold the name, -1 when
  the deadline had passed.
]]
--- @include "deadline"
if pastDeadline(tonumber(ARGV[3])) then
  return -1
end
if redis.call('HGET', KEYS[1], 'login') ~= ARGV[1] then
  return 0
end
return redis.call('SREM', KEYS[2], ARGV[2])
