-- wake: agents whose delay or wrap-up is over. Idle ones go back into
-- their queues' idle sets; wrap-up ones are returned so the service
-- stores their agent.state.changed(idle) (and are looked at again in a
-- second if that fails). ARGV: prefix, now (ms).
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
queues[#queues + 1] = '|'
for _, a in ipairs(wrapped) do queues[#queues + 1] = a end
return queues
