-- A FreeSWITCH mod_lua script, unchanged: it runs in Switchyard as it did
-- under mod_lua.
session:answer()
session:setVariable("ivr_entered", "yes")
local digits = session:playAndGetDigits(1, 4, 3, 5000, "#", "ivr/ivr-enter_account.wav", "ivr/ivr-invalid.wav", "account", "\\d+")
freeswitch.consoleLog("INFO", "account entered: " .. digits .. "\n")
if session:ready() then
  session:streamFile("ivr/ivr-thank_you.wav")
  session:hangup("NORMAL_CLEARING")
end
