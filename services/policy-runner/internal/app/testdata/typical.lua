-- The benchmark's "typical routing policy": time of day, a menu, a queue.
local hours = require("hours")
call.answer()
local now = os.date("*t")
if not hours.open({days = {1, 2, 3, 4, 5, 6, 7}, from = 0, to = 24}, now) then
  call.playback("ivr/closed.wav")
  return call.transfer("voicemail", "XML", "default")
end
call.playback("ivr/welcome.wav")
local choice = call.play_and_get_digits{min = 1, max = 1, tries = 2, timeout = 5000,
  file = "ivr/menu.wav", invalid_file = "ivr/invalid.wav", regex = "[12]"}
local q = "sales"
if choice == "2" then q = "support" end
call.set("switchyard_queue", q)
local ok, r = pcall(queue.enqueue, q, {priority = 5, timeout = 300})
if not ok then
  log.warn("queue unavailable", {queue = q})
  return call.transfer("operator", "XML", "default")
end
if r.outcome ~= "answered" then
  call.transfer("voicemail", "XML", "default")
end
