-- An IVR menu: press 1 for sales, 2 for support; anything else twice
-- goes to the operator.
call.answer()
call.playback("ivr/welcome.wav")
for attempt = 1, 2 do
  local choice = call.play_and_get_digits{min = 1, max = 1, tries = 1, timeout = 5000,
    file = "ivr/menu.wav", invalid_file = "ivr/invalid.wav", regex = "[12]"}
  if choice == "1" then
    log.info("caller chose sales")
    return call.transfer("sales", "XML", "default")
  elseif choice == "2" then
    log.info("caller chose support")
    return call.transfer("support", "XML", "default")
  end
end
call.playback("ivr/operator.wav")
call.transfer("operator", "XML", "default")
