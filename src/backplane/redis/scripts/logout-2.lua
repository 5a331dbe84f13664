--[[
  Frees a username, in the user's slot. Runs after the user has left every room in its index.
  Only the login that holds the name can free it, so a late cleanup of an old session never
  logs out a newer one.

  KEYS[1] user hash
  KEYS[2] user's room index
  ARGV[1] login id

  Returns 1 when freed, 0 when this login did not hold the name.
]]
if redis.call('HGET', KEYS[1], 'login') ~= ARGV[1] then
  return 0
end
redis.call('DEL', KEYS[1], KEYS[2])
return 1
