--[[
  Last step of PART, in the user's slot: drops the room from the user's room index, after the
  membership itself is gone.

  KEYS[1] user hash
  KEYS[2] user's room index
  ARGV[1] connection id of the caller
  ARGV[2] room key

  Returns 1 when dropped, 0 when it was not there or the caller no longer holds the name.
]]
if redis.call('HGET', KEYS[1], 'conn') ~= ARGV[1] then
  return 0
end
return redis.call('SREM', KEYS[2], ARGV[2])
