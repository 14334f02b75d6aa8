-- decide: the one place an offer is made. Atomically picks the member to
-- serve and the agent(s) to ring, and reserves them: no agent is offered
-- two calls, no member more agents than its strategy rings, however many
-- distributors ask at once. Run by decide_main (a decision asked for) and
-- apply_decide (the event that made a queue offerable, then at once its
-- decision, in one call).
-- q: the queue; now (ms); owner: the deciding instance; only: '' = the
-- best waiting member, else add an agent to this member's running offer
-- (ring-progressively); lim: {ring_cap, member_cap, scan_cap}.
-- Returns {} or {call id, member JSON, agent, agent JSON, agent version, ...}.
local function decide(q, now, owner, offer_id, only, lim)
  local ring_cap, member_cap, scan_cap = lim[1], lim[2], lim[3]
  local qcfg_raw = redis.call('HGET', k('q', q), 'cfg')
  if not qcfg_raw then return {} end
  local qcfg = cjson.decode(qcfg_raw)
  local strat = qcfg.strategy
  local idle = k('idle', q)
  if redis.call('ZCARD', idle) == 0 then return {} end

  -- The highest tier level a member may reach after waiting `wait` seconds
  -- (mod_callcenter's tier rules; no_agent_no_wait is applied while
  -- scanning). nil: every level.
  local function max_level(wait)
    if not qcfg.tier_rules_apply then return nil end
    local w = qcfg.tier_rule_wait_seconds or 0
    if w <= 0 then return nil end
    if qcfg.tier_rule_wait_multiply_level then
      return math.max(1, math.floor(wait / w))
    end
    if wait >= w then return nil end
    return 1
  end

  -- The skills a member needs after waiting `wait` seconds.
  local function needs(m, wait)
    local need = m.skills
    if not need then return nil end
    local relax, drop = 0, false
    for _, e in ipairs(qcfg.skill_escalation or {}) do
      if wait >= e.after_seconds then
        relax = math.max(relax, e.relax_levels or 0)
        drop = drop or e.drop_skills == true
      end
    end
    if drop then return nil end
    local out = {}
    for s, l in pairs(need) do out[s] = math.max(0, l - relax) end
    return out
  end

  local function skilled(a, need)
    if not need then return true end
    for s, l in pairs(need) do
      local have = redis.call('HGET', k('ask', a), s)
      if not have or tonumber(have) < l then return false end
    end
    return true
  end

  -- candidates walks idle agents in score order within [lo, hi) and
  -- returns up to `want` that have the skills.
  local function candidates(lo, hi, need, want, into, seen)
    local off, scanned = 0, 0
    while #into < want and scanned < scan_cap do
      local batch = redis.call('ZRANGEBYSCORE', idle, lo, '(' .. hi, 'LIMIT', off, 64)
      if #batch == 0 then break end
      for _, a in ipairs(batch) do
        scanned = scanned + 1
        if not seen[a] and skilled(a, need) then
          into[#into + 1] = a
          seen[a] = true
          if #into >= want then break end
        end
      end
      off = off + #batch
    end
    return into
  end

  -- logged_in reports whether an agent of a level up to top is logged in
  -- (available or on break, as mod_callcenter counts them).
  -- The lowest level anyone logged in has, read once per call (many
  -- members may ask).
  local lowest_online
  local function logged_in(top)
    if lowest_online == nil then
      lowest_online = false
      local c = redis.call('HGETALL', k('acount', q)) -- prelude's count: in:<level>
      for i = 1, #c, 2 do
        local lvl = tonumber(string.match(c[i], '^in:(%d+)$'))
        if lvl and (not lowest_online or lvl < lowest_online) then lowest_online = lvl end
      end
    end
    return lowest_online and lowest_online <= top
  end

  local function pick(m, wait)
    local need = needs(m, wait)
    local top = max_level(wait)
    local hi = '+inf'
    if top then hi = (top + 1) * LEVEL end
    local want = 1
    if strat == 'ring-all' and only == '' then want = ring_cap end
    local got, seen = {}, {}
    if strat == 'round-robin' then
      local rr = redis.call('HGET', k('q', q), 'rr')
      if rr then
        candidates('(' .. rr, hi, need, want, got, seen)
      end
    end
    candidates('-inf', hi, need, want, got, seen)
    if #got == 0 and top and qcfg.tier_rule_no_agent_no_wait and not logged_in(top) then
      -- nobody logged in at the levels reached yet: mod_callcenter's
      -- tier-rule-no-agent-no-wait goes on to the next levels at once
      candidates('-inf', '+inf', need, want, got, seen)
    end
    return got
  end

  local members
  if only ~= '' then
    local st = redis.call('HMGET', k('m', only), 'state', 'offer_id')
    if st[1] ~= 'offered' or st[2] ~= offer_id then return {} end
    members = {only}
  else
    members = redis.call('ZRANGE', k('wait', q), 0, member_cap - 1)
  end
  for _, cid in ipairs(members) do
    local mk = k('m', cid)
    local mraw, retry = unpack(redis.call('HMGET', mk, 'cfg', 'retry_at'))
    if mraw and (only ~= '' or num(retry, 0) <= now) then
      local m = cjson.decode(mraw)
      local wait = math.floor((now - num(m.joined_ms, now)) / 1000)
      local got = pick(m, wait)
      if #got > 0 then
        local out = {cid, mraw}
        for _, a in ipairs(got) do
          local ak = k('a', a)
          local qs = redis.call('HKEYS', k('atier', a))
          count(a, -1, qs)
          redis.call('HSET', ak, 'state', 'offered', 'offer_id', offer_id, 'offer_call', cid, 'offer_queue', q, 'owner', owner)
          count(a, 1, qs)
          redis.call('SADD', k('offered'), a)
          unindex(a, qs)
          local h = redis.call('HMGET', ak, 'cfg', 'ver')
          out[#out + 1] = a
          out[#out + 1] = h[1]
          out[#out + 1] = h[2] or '0'
        end
        redis.call('HSET', mk, 'state', 'offered', 'offer_id', offer_id)
        redis.call('ZREM', k('wait', q), cid)
        return out
      end
    end
  end
  return {}
end
