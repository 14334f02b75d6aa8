-- release: undo a reservation whose events could not be stored.
-- ARGV: prefix, queue, call id, offer id, now, '1' to put the member
-- back (else only the agents), agents...
local q, cid, offer_id, now = ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
local mk = k('m', cid)
local st = redis.call('HMGET', mk, 'state', 'offer_id', 'priority', 'joined_ms', 'agents')
if ARGV[6] == '1' and st[1] == 'offered' and st[2] == offer_id and not st[5] then
  redis.call('HSET', mk, 'state', 'waiting')
  redis.call('HDEL', mk, 'offer_id')
  redis.call('ZADD', k('wait', q), member_score(num(st[3], 0), num(st[4], 0)), cid)
end
for i = 7, #ARGV do
  local a = ARGV[i]
  local ak = k('a', a)
  local h = redis.call('HMGET', ak, 'state', 'offer_id', 'leg')
  if h[1] == 'offered' and h[2] == offer_id and not h[3] then
    local qs = redis.call('HKEYS', k('atier', a))
    count(a, -1, qs)
    redis.call('HSET', ak, 'state', 'idle')
    count(a, 1, qs)
    redis.call('SREM', k('offered'), a)
    redis.call('HDEL', ak, 'offer_id', 'offer_call', 'offer_queue', 'owner')
    index(a, now, qs)
  end
end
return 1
