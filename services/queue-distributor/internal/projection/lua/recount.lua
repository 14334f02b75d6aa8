-- recount: one queue's agent counts (acount:<queue>) counted again from
-- its agents (prelude's counted_in, as count keeps them), and put in place of
-- the kept ones when they differ — which only a script that failed
-- between a count(-1) and its count(1) can cause. It reads every agent of
-- the queue: an audit, run seldom. ARGV: prefix, queue, the rebuild
-- lock's key and the complete build's mark (either may be '').
-- Returns {'skipped'} while a rebuild holds the lock or the projection
-- bears no mark (it is being reset or replayed: its keys go and come in
-- batches), else {'checked', the fields that differed as 'field
-- kept->counted'...}.
local q, lock, mark = ARGV[2], ARGV[3], ARGV[4]
if (lock ~= '' and redis.call('EXISTS', lock) == 1) or (mark ~= '' and redis.call('EXISTS', mark) == 0) then
  return {'skipped'}
end
local want = {}
local function add(f) want[f] = (want[f] or 0) + 1 end
for _, a in ipairs(redis.call('HKEYS', k('tier', q))) do
  local h = redis.call('HMGET', k('a', a), 'status', 'state')
  if h[1] then counted_in(a, q, h, add) end
end
local have = {}
local kv = redis.call('HGETALL', k('acount', q))
for i = 1, #kv, 2 do have[kv[i]] = tonumber(kv[i + 1]) end
local diff = {}
for f, n in pairs(want) do
  if have[f] ~= n then diff[#diff + 1] = f .. ' ' .. (have[f] or 0) .. '->' .. n end
end
for f, n in pairs(have) do
  if want[f] == nil then diff[#diff + 1] = f .. ' ' .. n .. '->0' end
end
if #diff > 0 then
  redis.call('DEL', k('acount', q))
  for f, n in pairs(want) do redis.call('HSET', k('acount', q), f, n) end
end
table.sort(diff)
table.insert(diff, 1, 'checked')
return diff
