-- wake: agents whose delay or wrap-up is over, and members whose retry
-- time came. Idle agents go back into their queues' idle sets; wrap-up
-- ones are returned so the service stores their agent.state.changed(idle)
-- (and are looked at again in a second if that fails); the queues of both
-- are returned to be looked at. ARGV: prefix, now (ms).
-- Returns {queues to look at..., '|', wrap-up agents...}.
local now = tonumber(ARGV[2])
local due = redis.call('ZRANGEBYSCORE', k('wake'), '-inf', now, 'LIMIT', 0, 1000)
local queues, seenq, wrapped = {}, {}, {}
for _, a in ipairs(due) do
  local st = redis.call('HGET', k('a', a), 'state')
  if st == 'wrap_up' then
    wrapped[#wrapped + 1] = a
    redis.call('ZADD', k('wake'), now + 1000, a)
  else
    for _, q in ipairs(index(a, now)) do
      if not seenq[q] then seenq[q] = true; queues[#queues + 1] = q end
    end
  end
end
-- Members whose retry time came (their last offer reached no phone).
for _, cid in ipairs(redis.call('ZRANGEBYSCORE', k('mwake'), '-inf', now, 'LIMIT', 0, 1000)) do
  redis.call('ZREM', k('mwake'), cid)
  local q = redis.call('HGET', k('m', cid), 'queue')
  if q and not seenq[q] then seenq[q] = true; queues[#queues + 1] = q end
end
queues[#queues + 1] = '|'
for _, a in ipairs(wrapped) do queues[#queues + 1] = a end
return queues
