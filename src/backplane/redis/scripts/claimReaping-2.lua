--[[
  Claims the cleanup of a worker that stopped heartbeating. Several workers may try at once;
  exactly one gets it, and the claim expires so the work resumes if that one dies too.

  KEYS[1] the worker's heartbeat key
  KEYS[2] the worker's reaper lock
  ARGV[1] id of the worker claiming
  ARGV[2] claim lifetime (ms)

  Returns 1 when claimed, 0 when the worker is alive or another worker already claimed it.
]]
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return 1
end
return 0
