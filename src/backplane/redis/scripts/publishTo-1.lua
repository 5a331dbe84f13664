--[[
  Redis Cluster: one member's copy of a room message, published in the member's own slot, on
  its primary. Not a bare SPUBLISH: Redis 7.0 accepts SPUBLISH on a replica too and forwards it
  over the cluster bus, so after a failover a publish that still reached the old primary would
  arrive after later ones sent to the new primary. A script with a key runs on the primary.

  KEYS[1] the member's user hash
  ARGV[1] the member's inbox channel (in the same slot)
  ARGV[2] the member's login id as of the room message (a later login of the name gets nothing)
  ARGV[3] the payload: "<login id> <line>"
  ARGV[4] the publish command (SPUBLISH)

  Returns 1 when published, 0 when that login no longer holds the name.
]]
if redis.call('HGET', KEYS[1], 'login') ~= ARGV[2] then
  return 0
end
redis.call(ARGV[4], ARGV[1], ARGV[3])
return 1
