-- stats: one queue's live numbers. ARGV: prefix, queue, now (ms), window (ms).
-- Returns a JSON object.
local q, now, window = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
if redis.call('EXISTS', k('q', q)) == 0 then return false end
local waiting = redis.call('ZCARD', k('wait', q))
-- The earliest join: the first caller of each priority level in the
-- wait set (prelude's member_score orders by level, then join time).
local oldest = now
local from_score = '-inf'
while true do
  local first = redis.call('ZRANGEBYSCORE', k('wait', q), from_score, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
  if not first[1] then break end
  oldest = math.min(oldest, num(redis.call('HGET', k('m', first[1]), 'joined_ms'), now))
  from_score = (math.floor(tonumber(first[2]) / 1e13) + 1) * 1e13 -- the next level down
end
local agents = {logged_out = 0, available = 0, on_break = 0, idle = 0, offered = 0, in_call = 0, wrap_up = 0}
local counts = redis.call('HGETALL', k('acount', q)) -- kept by the events (prelude's count)
for i = 1, #counts, 2 do
  if agents[counts[i]] then agents[counts[i]] = tonumber(counts[i + 1]) end -- not the in:<level> ones
end
local answered, abandoned, exited, in_sl, wait_sum = 0, 0, 0, 0, 0
-- Whole buckets from the first that starts in the window; the members
-- who ended before it, one by one.
local from = now - window
local whole = math.ceil(from / HIST_BUCKET) * HIST_BUCKET
local buckets = redis.call('ZRANGEBYSCORE', k('hbk', q), whole, '+inf')
for i = 1, #buckets, 1000 do -- a day is 8,640 buckets; unpack takes fewer
  for _, v in ipairs(redis.call('HMGET', k('hsum', q), unpack(buckets, i, math.min(i + 999, #buckets)))) do
    local c = bucket_sums(v)
    answered, abandoned, exited = answered + c[1], abandoned + c[2], exited + c[3]
    in_sl, wait_sum = in_sl + c[4], wait_sum + c[5]
  end
end
for _, e in ipairs(redis.call('ZRANGEBYSCORE', k('hist', q), from, '(' .. string.format('%d', whole))) do
  local _, kind, wait, ok = string.match(e, '^(%d+)|([^|]+)|(%d+)|(%d)$')
  if kind == 'answered' then
    answered = answered + 1
    wait_sum = wait_sum + tonumber(wait)
    if ok == '1' then in_sl = in_sl + 1 end
  elseif kind == 'abandoned' then
    abandoned = abandoned + 1
  elseif kind then
    exited = exited + 1
  end
end
local ended = answered + abandoned + exited
local sl, asa, ab = 100, 0, 0
if answered + abandoned > 0 then sl = 100 * in_sl / (answered + abandoned) end
if answered > 0 then asa = wait_sum / answered / 1000 end
if ended > 0 then ab = 100 * abandoned / ended end
local function r2(x) return math.floor(x * 100 + 0.5) / 100 end
sl, asa, ab = r2(sl), r2(asa), r2(ab)
return cjson.encode({queue = q, waiting = waiting, longest_wait_seconds = r2((now - oldest) / 1000),
  agents = agents, answered = answered, abandoned = abandoned, exited = exited,
  service_level_pct = sl, average_speed_of_answer_seconds = asa, abandon_rate_pct = ab})
