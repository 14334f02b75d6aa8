-- Shared by every script: key names, the agent index, scores.
-- Keys are built here (not passed as KEYS) because an event touches keys
-- its sender cannot know; the projection needs one Redis, not a cluster.
local P = ARGV[1]
local LEVEL = 1e13 -- a score is level * LEVEL + the strategy's value (< 1e13)
-- Finished members are kept a day (hist:<queue>, one entry each) and
-- summed per 10 s bucket (hsum:<queue>, its buckets in hbk:<queue>): the
-- stats add whole buckets and read entries only for the window's first,
-- partial one.
local HIST_KEEP = 24 * 3600 * 1000
local HIST_BUCKET = 10000

-- A bucket's sums, as hsum:<queue> holds them ("a,b,x,s,w"): answered,
-- abandoned, exited, answered within the service level, wait of the
-- answered (ms). v false (Redis' nil): a bucket with nothing yet.
local function bucket_sums(v)
  local c = {0, 0, 0, 0, 0}
  if v then
    local i = 1
    for n in string.gmatch(v, '[^,]+') do c[i] = tonumber(n); i = i + 1 end
  end
  return c
end

-- An event builds a dozen keys, each of one or two parts: those are
-- joined without allocating the table table.concat needs.
local function k(a, b, ...)
  if b == nil then return P .. a end
  if ... == nil then return P .. a .. ':' .. b end
  return P .. table.concat({a, b, ...}, ':')
end

local function num(v, d)
  local n = tonumber(v)
  if n == nil then return d end
  return n
end

local function tier_of(q, a)
  local t = redis.call('HGET', k('tier', q), a)
  if not t then return nil end
  local lvl, pos = string.match(t, '^(%d+),(%d+)$')
  return tonumber(lvl), tonumber(pos)
end

-- A strategy's order among idle agents of one level: lowest first, ties
-- by position as in mod_callcenter's ORDER BY. A value fits below LEVEL:
-- (quantity < 9e8) * 1e4 + position (< 1e4).
local EPOCH = 1577836800 -- 2020-01-01: idle times in seconds since then
local function by_pos(v, pos) return math.min(math.max(v, 0), 9e8) * 1e4 + pos end
local function strategy_value(strat, a, pos)
  if strat == 'longest-idle-agent' then
    local since = num(redis.call('HGET', k('a', a), 'idle_since'), 0)
    return by_pos(math.floor(since / 1000) - EPOCH, pos)
  elseif strat == 'agent-with-least-talk-time' then
    return by_pos(math.floor(num(redis.call('HGET', k('a', a), 'talk_ms'), 0) / 1000), pos)
  elseif strat == 'agent-with-fewest-calls' then
    return by_pos(num(redis.call('HGET', k('a', a), 'calls'), 0), pos)
  elseif strat == 'random' then
    -- Deterministic (a replay gives the same order) yet spread: a hash of
    -- the agent and the moment it became idle.
    local h = redis.sha1hex(a .. ':' .. (redis.call('HGET', k('a', a), 'idle_since') or ''))
    return tonumber(string.sub(h, 1, 10), 16)
  end
  return pos -- round-robin, top-down, sequentially-by-agent-order, ring-all, ring-progressively
end

local function score(q, a)
  local lvl, pos = tier_of(q, a)
  if not lvl then return nil end
  local strat = redis.call('HGET', k('q', q), 'strategy') or 'longest-idle-agent'
  return lvl * LEVEL + strategy_value(strat, a, pos)
end

-- counted_in calls add with each field of acount:<q> agent a counts in,
-- h its {status, state}: the one definition of the counts, for count and
-- for the audit's recount.
local function counted_in(a, q, h, add)
  add(h[1])
  if h[1] ~= 'logged_out' then
    add(h[2])
    local lvl = string.match(redis.call('HGET', k('atier', a), q) or '', '^(%d+),')
    if lvl then add('in:' .. lvl) end
  end
end

-- acount:<q> counts a queue's agents by status and, those logged in, by
-- state and by tier level ('in:<level>'): the stats show the first, a
-- join asks whether anyone is logged in, a decision which is the lowest
-- level anyone logged in has — and none of them reads every agent of the
-- queue. Whatever changes an agent's status, state or tiers takes it out
-- of the counts first (count(a, -1)) and puts it back after (count(a, 1)),
-- with the same queues. A count that reaches 0 is deleted, so the hash
-- holds the same fields however it got there (a rebuild compares).
local function count(a, sign, qs)
  local h = redis.call('HMGET', k('a', a), 'status', 'state')
  if not h[1] then return end
  for _, q in ipairs(qs or redis.call('HKEYS', k('atier', a))) do
    local ck = k('acount', q)
    counted_in(a, q, h, function(field)
      if redis.call('HINCRBY', ck, field, sign) == 0 then redis.call('HDEL', ck, field) end
    end)
  end
end

-- qs (optional): the agent's queues, when the caller has read them.
local function unindex(a, qs)
  for _, q in ipairs(qs or redis.call('HKEYS', k('atier', a))) do
    redis.call('ZREM', k('idle', q), a)
  end
  redis.call('ZREM', k('wake'), a)
end

-- index puts an agent where the distributor looks for it: in every idle
-- set of its queues when it can take a call now, in the wake set when it
-- can later. It returns the queues it became offerable in. qs as for
-- unindex.
local function index(a, now, qs)
  qs = qs or redis.call('HKEYS', k('atier', a))
  local h = redis.call('HMGET', k('a', a), 'status', 'state', 'ready_at')
  local became = {}
  if h[2] == 'wrap_up' then
    -- the wake loop ends the wrap-up with an agent.state.changed(idle)
    unindex(a, qs)
    redis.call('ZADD', k('wake'), num(h[3], 0), a)
    return became
  end
  if h[1] ~= 'available' or h[2] ~= 'idle' then
    unindex(a, qs)
    return became
  end
  local ready = num(h[3], 0)
  if ready > now then
    unindex(a, qs)
    redis.call('ZADD', k('wake'), ready, a)
    return became
  end
  redis.call('ZREM', k('wake'), a)
  for _, q in ipairs(qs) do
    local s = score(q, a)
    if s then
      redis.call('ZADD', k('idle', q), s, a)
      became[#became + 1] = q
    end
  end
  return became
end

-- reindex_queue rebuilds one queue's idle set (its strategy changed).
local function reindex_queue(q, now)
  redis.call('DEL', k('idle', q))
  for _, a in ipairs(redis.call('HKEYS', k('tier', q))) do
    index(a, now)
  end
end

local function member_score(priority, joined)
  -- Higher priority first, then first come first served.
  return -priority * 1e13 + joined
end
