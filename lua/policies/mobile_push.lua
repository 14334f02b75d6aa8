-- Wake the on-call agent's phone, then ring them. If the push cannot be
-- sent (no push-notifier), the call still rings.
call.answer()
local ok, err = pcall(push.notify, {user = "oncall", type = "voip", ttl = 30,
  data = {caller_id_number = call.caller_id_number}})
if not ok then log.warn("push not sent", {reason = tostring(err)}) end
call.bridge("user/oncall")
call.hangup()
