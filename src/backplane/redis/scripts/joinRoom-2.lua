--[[
  Second step of JOIN, in the room's slot: adds the member, creating the room if needed.
  The caller holds the name (checked by reserveRoom), so an entry for the same name under
  another connection is left over from an earlier session and is replaced.

  KEYS[1] room members hash (member key -> connection id)
  KEYS[2] room display name
  ARGV[1] member key
  ARGV[2] connection id
  ARGV[3] room name as the caller spelled it (kept only if this creates the room)

  Returns 1 when joined, 0 when this connection is already a member.
]]
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  return 0
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('SET', KEYS[2], ARGV[3], 'NX')
return 1
