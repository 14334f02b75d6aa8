-- apply_batch: events into the projection in order, each once: exactly
-- what apply in 'gaps' mode does to them one after the other, in one call
-- (a rebuild or a follower that is behind pays one round trip per batch,
-- not per event).
-- ARGV: prefix, id window, then seven per event: stream, seq, type,
-- aggregate id, data (JSON), event time (unix ms), event id.
-- Returns three or more per event: status, detail, number of queues to
-- look at, the queues. An event that raises an error ends the batch with
-- {'error', message} in its place: the events before it stay applied, and
-- it stays recorded or not just as with apply (recorded once its data
-- was read as JSON, so it is not applied again half done).
local out = {}
-- The streams' positions are read once and written once per batch: the
-- script is atomic, so no client can tell, and every way out of the loop
-- below goes through save.
local last, changed = {}, {}
local function save()
  for stream in pairs(changed) do redis.call('HSET', k('seq'), stream, last[stream]) end
end
local function fail(err)
  save()
  if type(err) == 'table' then err = err.err or cjson.encode(err) end
  out[#out + 1] = 'error'
  out[#out + 1] = tostring(err)
  return out
end
local window = tonumber(ARGV[2])
for i = 3, #ARGV, 7 do
  local stream, seq = ARGV[i], tonumber(ARGV[i + 1])
  local ok, d = pcall(cjson.decode, ARGV[i + 4])
  if not ok then return fail(d) end
  local l = last[stream]
  if l == nil then
    l = num(redis.call('HGET', k('seq'), stream), 0)
    last[stream] = l
  end
  if seq <= l then
    out[#out + 1] = 'dup'
    out[#out + 1] = tostring(l)
    out[#out + 1] = '0'
  else
    last[stream], changed[stream] = seq, true
    local ok2, r = pcall(apply_event, stream, seq, ARGV[i + 6], window, ARGV[i + 2], ARGV[i + 3], d, tonumber(ARGV[i + 5]))
    if not ok2 then return fail(r) end
    out[#out + 1] = r[1]
    out[#out + 1] = r[2]
    out[#out + 1] = tostring(#r - 2)
    for j = 3, #r do out[#out + 1] = r[j] end
  end
end
save()
return out
