-- Wake the on-call agent's phone, then ring them. push.notify answers
-- "not available" until the push-notifier exists; the call still rings.
call.answer()
local ok, err = pcall(push.notify, {user = "oncall", type = "voip", call = call.uuid})
if not ok then log.warn("push not sent", {reason = tostring(err)}) end
call.bridge("user/oncall")
call.hangup()
