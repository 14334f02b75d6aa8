-- apply: one event into the projection, once.
-- ARGV: prefix, stream, seq, type, aggregate id, data (JSON), event time
-- (unix ms), 'gaps' (allow a sequence gap: the ordered consumer) or
-- 'strict' (write-through: only the next sequence), event id, id window.
-- Returns {'applied'|'dup'|'gap'|'ignored', detail, queues to look at...}.
local function apply_argv()
  local stream, seq = ARGV[2], tonumber(ARGV[3])
  local d = cjson.decode(ARGV[6])
  local last = num(redis.call('HGET', k('seq'), stream), 0)
  if seq <= last then return {'dup', tostring(last)} end
  if ARGV[8] == 'strict' and seq ~= last + 1 then return {'gap', tostring(last)} end
  redis.call('HSET', k('seq'), stream, seq)
  return apply_event(stream, seq, ARGV[9], tonumber(ARGV[10]), ARGV[4], ARGV[5], d, tonumber(ARGV[7]))
end
