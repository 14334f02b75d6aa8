-- apply_event: what one event does to the projection, for apply (one
-- event) and apply_batch (many in one call). The caller has checked and
-- recorded the event's sequence. now is the event's time (unix ms): state
-- derived from time is computed from when the event happened, so a replay
-- reaches the state the live projection did.
-- Returns {'applied'|'ignored', detail, queues to look at...}.
local function end_member(q, cid)
  redis.call('ZREM', k('wait', q), cid)
  redis.call('ZREM', k('mwake'), cid)
  redis.call('SREM', k('members', q), cid)
  redis.call('ZREM', k('deadline'), cid)
  redis.call('DEL', k('m', cid))
end

-- Kept from when they happened, so a replay keeps what the live
-- projection kept (and not what it had let expire): the outcome
-- queuectl.status answers for a call that left its queue (ten minutes),
-- and an abandoned caller's place (the queue's discard_abandoned_after).
-- SET ... PXAT in the past stores nothing.
local OUTCOME_KEEP = 600000

local function keep(key, value, at, ms)
  if at and ms > 0 then redis.call('SET', key, value, 'PXAT', at + ms) end
end

-- The outcome of a member's end event, as queue.enqueue returns it.
local function end_outcome(typ, q, d)
  local o = {queue = q, wait_seconds = (d.wait_ms or 0) / 1000}
  if typ == 'queue.member.abandoned' then
    o.outcome = 'abandoned'
  else
    o.outcome = d.reason -- timeout, exit_key, no_agents, overflowed
    if d.reason == 'exit_key' then o.digit = d.digit end
    if d.reason == 'overflowed' then o.target = d.target end
    if d.reason == 'no_agents' then o.reason = 'no agent logged in' end
  end
  return o
end

local function apply_event_body(seq, typ, id, d, now)
  local out = {'applied', ''}
  local function look(qs) for _, q in ipairs(qs) do out[#out + 1] = q end end
  local function ignored(why) out[1] = 'ignored'; out[2] = why end

  local function hist(q, kind, wait_ms, at)
    -- A wait below zero is two instances' clocks apart: counted as none.
    wait_ms = math.max(wait_ms or 0, 0)
    -- One entry per finished member, for the stats window.
    local sl = num(redis.call('HGET', k('q', q), 'sl_ms'), 20000)
    local ok = 0
    if wait_ms <= sl then ok = 1 end
    redis.call('ZADD', k('hist', q), at, seq .. '|' .. kind .. '|' .. wait_ms .. '|' .. ok)
    redis.call('ZREMRANGEBYSCORE', k('hist', q), '-inf', at - HIST_KEEP)
    -- The sums of its 10 s bucket.
    local b = string.format('%d', at - at % HIST_BUCKET)
    local v = redis.call('HGET', k('hsum', q), b)
    local c = bucket_sums(v)
    if kind == 'answered' then
      c[1], c[4], c[5] = c[1] + 1, c[4] + ok, c[5] + wait_ms
    elseif kind == 'abandoned' then
      c[2] = c[2] + 1
    else
      c[3] = c[3] + 1
    end
    redis.call('HSET', k('hsum', q), b, table.concat(c, ','))
    if not v then -- a new bucket; those wholly older than the history kept go
      redis.call('ZADD', k('hbk', q), b, b)
      local edge = at - HIST_KEEP - HIST_BUCKET
      while true do -- in chunks: unpack takes fewer than a day's 8,640
        local gone = redis.call('ZRANGEBYSCORE', k('hbk', q), '-inf', edge, 'LIMIT', 0, 1000)
        if #gone == 0 then break end
        redis.call('HDEL', k('hsum', q), unpack(gone))
        redis.call('ZREM', k('hbk', q), unpack(gone))
      end
    end
  end

  if typ == 'queue.created' or typ == 'queue.updated' then
    local cfg = d.queue
    local old = redis.call('HGET', k('q', id), 'strategy')
    redis.call('SADD', k('queues'), id)
    redis.call('HSET', k('q', id), 'cfg', cjson.encode(cfg), 'strategy', cfg.strategy,
      'sl_ms', (cfg.service_level_seconds or 20) * 1000, 'ver', seq)
    if old ~= cfg.strategy then reindex_queue(id, now) end
    look({id})

  elseif typ == 'queue.deleted' then
    for _, a in ipairs(redis.call('HKEYS', k('tier', id))) do
      redis.call('HDEL', k('atier', a), id)
    end
    for _, cid in ipairs(redis.call('SMEMBERS', k('members', id))) do
      redis.call('DEL', k('m', cid))
    end
    redis.call('DEL', k('q', id), k('tier', id), k('idle', id), k('wait', id), k('hist', id), k('hsum', id), k('hbk', id), k('members', id), k('acount', id))
    redis.call('SREM', k('queues'), id)

  elseif typ == 'queue.tier.set' then
    if redis.call('EXISTS', k('q', id)) == 0 then
      ignored('no such queue')
    else
      local t = d.level .. ',' .. (d.position or 0)
      -- out of the counts at its old level (if any), back at the new one
      if redis.call('HEXISTS', k('tier', id), d.agent) == 1 then count(d.agent, -1, {id}) end
      redis.call('HSET', k('tier', id), d.agent, t)
      redis.call('HSET', k('atier', d.agent), id, t)
      count(d.agent, 1, {id})
      redis.call('HSET', k('q', id), 'ver', seq)
      redis.call('ZREM', k('idle', id), d.agent)
      look(index(d.agent, now))
    end

  elseif typ == 'queue.tier.removed' then
    if redis.call('HEXISTS', k('tier', id), d.agent) == 1 then count(d.agent, -1, {id}) end
    redis.call('HDEL', k('tier', id), d.agent)
    redis.call('HDEL', k('atier', d.agent), id)
    redis.call('ZREM', k('idle', id), d.agent)

  elseif typ == 'queue.member.joined' then
    local m = d.member
    if redis.call('EXISTS', k('m', m.call_id)) == 1 then
      ignored('already a member')
    else
      redis.call('HSET', k('m', m.call_id), 'queue', id, 'state', 'waiting', 'node', m.node,
        'priority', m.priority or 0, 'joined_ms', m.joined_ms, 'cfg', cjson.encode(m), 'ver', seq)
      redis.call('ZADD', k('wait', id), member_score(m.priority or 0, m.joined_ms), m.call_id)
      redis.call('SADD', k('members', id), m.call_id)
      if (m.max_wait_seconds or 0) > 0 then
        redis.call('ZADD', k('deadline'), m.joined_ms + m.max_wait_seconds * 1000, m.call_id)
      end
      redis.call('HINCRBY', k('q', id), 'joined', 1)
      -- The outcome saved for the call's last time in a queue is over: a
      -- status asked from now on is about this one. A place held for its
      -- number is taken (or, joined anew, given up).
      redis.call('DEL', k('outcome', m.call_id))
      if (m.caller_id_number or '') ~= '' then redis.call('DEL', k('place', id, m.caller_id_number)) end
      look({id})
    end

  elseif typ == 'queue.member.offered' then
    local mk = k('m', d.call_id)
    local st = redis.call('HMGET', mk, 'state', 'offer_id')
    if st[1] == 'waiting' or (st[1] == 'offered' and st[2] == d.offer_id) then
      local agents = {}
      if st[1] == 'offered' then agents = cjson.decode(redis.call('HGET', mk, 'agents') or '[]') end
      for _, a in ipairs(d.agents) do agents[#agents + 1] = a end
      redis.call('HSET', mk, 'state', 'offered', 'offer_id', d.offer_id, 'agents', cjson.encode(agents), 'ver', seq)
      redis.call('ZREM', k('wait', id), d.call_id)
      -- round-robin goes on after the agent offered last
      local lvl, pos = tier_of(id, d.agents[#d.agents])
      if lvl then redis.call('HSET', k('q', id), 'rr', lvl * LEVEL + pos) end
    else
      ignored('member not waiting')
    end

  elseif typ == 'queue.member.requeued' then
    local mk = k('m', d.call_id)
    local st = redis.call('HMGET', mk, 'state', 'offer_id', 'priority', 'joined_ms')
    if st[1] == 'offered' and st[2] == d.offer_id then
      redis.call('HSET', mk, 'state', 'waiting', 'ver', seq)
      redis.call('HDEL', mk, 'offer_id', 'agents')
      redis.call('HINCRBY', mk, 'attempts', 1)
      if (d.retry_at_ms or 0) > 0 then
        -- not offered before then; the wake loop looks at the queue again
        redis.call('HSET', mk, 'retry_at', d.retry_at_ms)
        redis.call('ZADD', k('mwake'), d.retry_at_ms, d.call_id)
      else
        redis.call('HDEL', mk, 'retry_at')
      end
      redis.call('ZADD', k('wait', id), member_score(num(st[3], 0), num(st[4], 0)), d.call_id)
      look({id})
    else
      ignored('member not offered with this offer')
    end

  elseif typ == 'queue.member.answered' then
    local st = redis.call('HGET', k('m', d.call_id), 'state')
    if st then
      end_member(id, d.call_id)
      hist(id, 'answered', d.wait_ms, d.at_ms)
      redis.call('HINCRBY', k('q', id), 'answered', 1)
    else
      ignored('no such member')
    end

  elseif typ == 'queue.member.abandoned' or typ == 'queue.member.exited' then
    local st, mcfg, joined = unpack(redis.call('HMGET', k('m', d.call_id), 'state', 'cfg', 'joined_ms'))
    if st then
      if typ == 'queue.member.abandoned' and mcfg then
        -- mod_callcenter's abandoned-resume: the number calling back
        -- takes this place again.
        local number = cjson.decode(mcfg).caller_id_number
        local qc = redis.call('HGET', k('q', id), 'cfg')
        qc = qc and cjson.decode(qc) or {}
        if type(number) == 'string' and number ~= '' and joined and qc.abandoned_resume_allowed == true then
          keep(k('place', id, number), joined, d.at_ms, num(qc.discard_abandoned_after_seconds, 60) * 1000)
        end
      end
      if typ == 'queue.member.abandoned' or (d.reason or '') ~= '' then
        keep(k('outcome', d.call_id), cjson.encode(end_outcome(typ, id, d)), d.at_ms, OUTCOME_KEEP)
      end
      end_member(id, d.call_id)
      local kind = 'abandoned'
      if typ == 'queue.member.exited' then kind = 'exited:' .. (d.reason or '') end
      hist(id, kind, d.wait_ms, d.at_ms)
    else
      ignored('no such member')
    end

  elseif typ == 'agent.created' or typ == 'agent.updated' then
    local a = d.agent
    local ak = k('a', id)
    redis.call('SADD', k('agents'), id)
    if redis.call('EXISTS', ak) == 0 then
      redis.call('HSET', ak, 'status', 'logged_out', 'state', 'idle', 'calls', 0, 'talk_ms', 0, 'noans', 0, 'idle_since', now)
      count(id, 1)
    end
    redis.call('HSET', ak, 'cfg', cjson.encode(a), 'ver', seq)
    redis.call('DEL', k('ask', id))
    if a.skills then
      for s, l in pairs(a.skills) do redis.call('HSET', k('ask', id), s, l) end
    end
    look(index(id, now))

  elseif typ == 'agent.deleted' then
    unindex(id)
    count(id, -1)
    for _, q in ipairs(redis.call('HKEYS', k('atier', id))) do
      redis.call('HDEL', k('tier', q), id)
    end
    redis.call('DEL', k('a', id), k('ask', id), k('atier', id))
    redis.call('SREM', k('agents'), id)
    redis.call('SREM', k('offered'), id)

  elseif typ == 'agent.status.changed' then
    local ak = k('a', id)
    if redis.call('EXISTS', ak) == 0 then
      ignored('no such agent')
    else
      local old = redis.call('HGET', ak, 'status')
      local qs = redis.call('HKEYS', k('atier', id))
      count(id, -1, qs)
      redis.call('HSET', ak, 'status', d.status, 'ver', seq)
      count(id, 1, qs)
      if d.status == 'available' then
        redis.call('HSET', ak, 'noans', 0)
        if old == 'logged_out' then redis.call('HSET', ak, 'calls', 0, 'talk_ms', 0, 'idle_since', d.at_ms) end
      end
      look(index(id, now))
    end

  elseif typ == 'agent.state.changed' then
    local ak = k('a', id)
    if redis.call('EXISTS', ak) == 0 then
      ignored('no such agent')
    else
      local qs = redis.call('HKEYS', k('atier', id))
      count(id, -1, qs)
      local cur = redis.call('HMGET', ak, 'state', 'offer_id', 'offer_call')
      if d.state == 'offered' then
        if cur[1] == 'idle' or (cur[1] == 'offered' and cur[2] == d.offer_id) then
          redis.call('SADD', k('offered'), id)
          redis.call('HSET', ak, 'state', 'offered', 'offer_id', d.offer_id, 'offer_call', d.call_id,
            'offer_queue', d.queue, 'owner', d.owner or '', 'leg', d.leg or '', 'node', d.node or '', 'offered_at', d.at_ms, 'ver', seq)
          unindex(id)
        else
          ignored('agent not idle')
        end
      elseif d.state == 'in_call' then
        if cur[1] == 'offered' and cur[2] == d.offer_id then
          redis.call('SREM', k('offered'), id)
          redis.call('HSET', ak, 'state', 'in_call', 'leg', d.leg or '', 'answered_at', d.at_ms, 'wait_ms', d.wait_ms or 0, 'noans', 0, 'ver', seq)
          redis.call('HINCRBY', ak, 'calls', 1)
          redis.call('SET', k('incall', d.call_id), id)
        else
          ignored('agent not offered this call')
        end
      elseif d.state == 'wrap_up' then
        if cur[1] == 'in_call' and cur[3] == d.call_id then
          -- The call was answered: what the caller side is told.
          local q, wait = unpack(redis.call('HMGET', ak, 'offer_queue', 'wait_ms'))
          keep(k('outcome', d.call_id), cjson.encode({outcome = 'answered', queue = q or '', agent = id,
            wait_seconds = num(wait, 0) / 1000}), d.at_ms, OUTCOME_KEEP)
          redis.call('HSET', ak, 'state', 'wrap_up', 'idle_since', d.at_ms, 'ready_at', d.ready_at_ms or d.at_ms, 'ver', seq)
          redis.call('HINCRBY', ak, 'talk_ms', d.talk_ms or 0)
          redis.call('HDEL', ak, 'offer_id', 'offer_queue', 'owner', 'offered_at', 'answered_at', 'wait_ms', 'node')
          redis.call('DEL', k('incall', d.call_id))
          index(id, now)
        else
          ignored('agent not in this call')
        end
      elseif d.state == 'idle' then
        if cur[1] == 'wrap_up' or cur[1] == 'idle' then
          redis.call('HSET', ak, 'state', 'idle', 'ver', seq)
          redis.call('HDEL', ak, 'offer_call', 'leg')
          if d.ready_at_ms then redis.call('HSET', ak, 'ready_at', d.ready_at_ms) end
          look(index(id, now))
        else
          ignored('agent busy')
        end
      else
        ignored('unknown state')
      end
      count(id, 1, qs)
    end

  elseif typ == 'agent.offer.declined' then
    local ak = k('a', id)
    local cur = redis.call('HMGET', ak, 'state', 'offer_id', 'noans', 'cfg', 'status')
    if cur[1] == 'offered' and cur[2] == d.offer_id then
      local qs = redis.call('HKEYS', k('atier', id))
      count(id, -1, qs)
      redis.call('SREM', k('offered'), id)
      redis.call('HSET', ak, 'state', 'idle', 'ready_at', d.ready_at_ms or d.at_ms, 'ver', seq)
      redis.call('HDEL', ak, 'offer_id', 'offer_call', 'offer_queue', 'owner', 'offered_at', 'leg', 'node')
      if d.counts_as_no_answer then
        local n = num(cur[3], 0) + 1
        redis.call('HSET', ak, 'noans', n)
        local max = cjson.decode(cur[4]).max_no_answer or 0
        if max > 0 and n >= max and cur[5] == 'available' then
          redis.call('HSET', ak, 'status', 'on_break')
          out[2] = 'max_no_answer'
        end
      end
      count(id, 1, qs)
      look(index(id, now))
    else
      ignored('no such offer')
    end

  elseif typ == 'queue.malformed' or typ == 'agent.malformed' then
    -- Data the scripts cannot read (projection.CheckData): its
    -- sequence and its aggregate's version are kept, nothing else.
    ignored('malformed')

  else
    ignored('unknown event type')
  end
  return out
end

-- The aggregate's version is the last sequence stored on its subjects
-- (queues.<q>.> or agents.<a>.>), whatever the event did to the state:
-- an append checks it (Nats-Expected-Last-Subject-Sequence), and a
-- queue's member events and events the state ignored advance that
-- sequence too. Left behind, the version would refuse every later change
-- of the queue or agent as concurrent. An aggregate that is not there
-- (deleted, or never made: a stale event) keeps its version in the
-- tombstone hash gone:<q|a>, which making it again must expect.
--
-- eid is the event's CloudEvents id. A copy of an event stored again under
-- a new Nats-Msg-Id (a tool replaying events, a retry after JetStream's
-- duplicate window) has a new sequence but the same id: it is refused
-- here, whatever state it finds. The ids of the last `window` sequences
-- of each stream are remembered (trimmed every 256 sequences, so a replay
-- keeps exactly what the live projection kept); an empty eid is not
-- checked.
local function apply_event(stream, seq, eid, window, typ, id, d, now)
  local out
  local ids = k('ids', stream)
  if eid ~= '' and redis.call('ZSCORE', ids, eid) then
    out = {'ignored', 'event id applied already'}
  else
    if eid ~= '' then
      redis.call('ZADD', ids, seq, eid)
      if seq % 256 == 0 then redis.call('ZREMRANGEBYSCORE', ids, '-inf', seq - window) end
    end
    out = apply_event_body(seq, typ, id, d, now)
  end
  local root
  if string.sub(typ, 1, 6) == 'queue.' then root = 'q'
  elseif string.sub(typ, 1, 6) == 'agent.' then root = 'a' end
  if root then
    if redis.call('EXISTS', k(root, id)) == 1 then
      redis.call('HSET', k(root, id), 'ver', seq)
    else
      redis.call('HSET', k('gone', root), id, seq)
    end
  end
  return out
end
