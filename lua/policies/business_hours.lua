-- The front desk's business hours (lua/schedules.json: New York time, with
-- holidays): open, the caller reaches the front desk; closed, they hear the
-- closed message and may leave a voicemail. A caller who called in the
-- last ten minutes while closed is told we are still closed and goes
-- straight to voicemail (per-tenant state in kv).
call.answer()
if schedule.is_open("frontdesk") then
  kv.delete("closed_call." .. call.caller_id_number)
  return call.transfer("frontdesk", "XML", "default")
end
local key = "closed_call." .. call.caller_id_number
local last = tonumber(kv.get(key) or "0")
kv.set(key, tostring(os.time()))
if os.time() - last > 600 then
  call.playback("ivr/closed.wav")
end
call.transfer("voicemail", "XML", "default")
