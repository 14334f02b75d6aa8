-- apply_decide: apply's event, then, when it made queues offerable, the
-- decision in the first of them that has an offer to make: the writer's
-- own event and the offer it allows in one call (one Redis round trip
-- fewer between an agent becoming available and its phone ringing).
-- ARGV: apply's ten, then now (ms), owner, offer id, ring-all cap, members
-- to consider, agents to scan.
-- Returns {apply's result, {} or {queue, decide's result...}, error}: a
-- decision that fails (bad data in a queue) does not undo the applied
-- event nor fail it; its error comes back as the third value ('' if none).
local r = apply_argv()
if (r[1] == 'applied' or r[1] == 'ignored') and #r > 2 then
  local now, owner, offer_id = tonumber(ARGV[11]), ARGV[12], ARGV[13]
  local lim = {tonumber(ARGV[14]), tonumber(ARGV[15]), tonumber(ARGV[16])}
  for i = 3, #r do
    local ok, o = pcall(decide, r[i], now, owner, offer_id, '', lim)
    if not ok then return {r, {}, 'decide in queue ' .. r[i] .. ': ' .. tostring(o)} end
    if #o > 0 then
      table.insert(o, 1, r[i])
      return {r, o, ''}
    end
  end
end
return {r, {}, ''}
