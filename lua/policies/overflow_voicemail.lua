-- Try the team's ring group; when nobody answers, overflow to voicemail.
call.answer()
call.playback("ivr/connecting.wav")
local result = call.bridge("{originate_timeout=20}user/1000,user/1001")
if result.hangup_cause ~= "NORMAL_CLEARING" or not call.ready() then
  call.transfer("voicemail", "XML", "default")
end
