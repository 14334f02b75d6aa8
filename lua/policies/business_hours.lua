-- Open Monday to Friday 09:00-17:00 (in the runner's time zone): the caller
-- reaches the front desk; otherwise they hear the closed message and may
-- leave a voicemail.
local hours = require("hours")
local now = os.date("*t")
if call.variables.switchyard_force_hours == "open" then now = {wday = 2, hour = 10} end
if call.variables.switchyard_force_hours == "closed" then now = {wday = 1, hour = 10} end

call.answer()
if hours.open({days = {2, 3, 4, 5, 6}, from = 9, to = 17}, now) then
  call.transfer("frontdesk", "XML", "default")
else
  call.playback("ivr/closed.wav")
  call.transfer("voicemail", "XML", "default")
end
