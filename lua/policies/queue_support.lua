-- Queue the caller for support. The caller leaves the queue answered (and
-- their agent has hung up), or without an agent: then voicemail, the
-- operator for the exit key, or the queue's overflow target.
call.answer()
local ok, r = pcall(queue.enqueue, "support", {timeout = 120})
if not ok then
  log.warn("queueing not available; voicemail", {err = r})
  return call.transfer("voicemail", "XML", "default")
end
log.info("left the queue", {outcome = r.outcome, agent = r.agent, wait_seconds = r.wait_seconds})
if r.outcome == "abandoned" or not call.ready() then return end
call.set("queue_outcome", r.outcome)
call.set("queue_agent", r.agent)
if r.outcome == "answered" then
  call.hangup("NORMAL_CLEARING")
elseif r.outcome == "overflowed" then
  call.transfer(r.target, "XML", "default")
elseif r.outcome == "exit_key" then
  call.transfer("operator", "XML", "default")
else
  call.transfer("voicemail", "XML", "default")
end
