--[[
  Delivers a batch of direct messages: every DM a worker accepted in one event-loop turn (or,
  on Redis Cluster, the DMs of one turn to one recipient), as runs: one sender's lines to one
  recipient, joined. For each run the sender's ownership of its name (where its key is given),
  the recipient's lookup and the publish are one step, so the lines go to the login that holds
  the name at that instant. A recipient's runs are joined in the order given: one publish per
  recipient. Fenced: the whole batch does nothing once Redis' clock passes the deadline.

  KEYS[i]            the user hashes of every sender and recipient named below
  ARGV[1]            deadline (ms, Redis' clock; 0: none)
  ARGV[2]            the publish command
  ARGV[3]            m, the number of runs
  ARGV[3+i]          for each key i: that user's inbox channel
  ARGV[3+n+4j-3..]   for each run j: sender key index (0: do not check), sender login id,
                     recipient key index, the run's complete lines

  Publishes "<login id> <lines>" to each recipient that is logged in. Returns one result per
  run: 1 delivered, 0 recipient not logged in, -2 sender does not hold its name; or the single
  result { -1 } when the deadline had passed.
]]
--- @include "deadline"
if pastDeadline(tonumber(ARGV[1])) then
  return { -1 }
end
local n = #KEYS
local m = tonumber(ARGV[3])
local logins = {}
local function loginOf(i)
  local login = logins[i]
  if login == nil then
    login = redis.call('HGET', KEYS[i], 'login') or false
    logins[i] = login
  end
  return login
end
local results = {}
local lines = {}
local order = {}
for j = 1, m do
  local base = 3 + n + 4 * (j - 1)
  local sender = tonumber(ARGV[base + 1])
  local recipient = tonumber(ARGV[base + 3])
  if sender > 0 and loginOf(sender) ~= ARGV[base + 2] then
    results[j] = -2
  elseif not loginOf(recipient) then
    results[j] = 0
  else
    if lines[recipient] == nil then
      lines[recipient] = {}
      order[#order + 1] = recipient
    end
    local pending = lines[recipient]
    pending[#pending + 1] = ARGV[base + 4]
    results[j] = 1
  end
end
for _, recipient in ipairs(order) do
  redis.call(ARGV[2], ARGV[3 + recipient], loginOf(recipient) .. ' ' .. table.concat(lines[recipient]))
end
return results
