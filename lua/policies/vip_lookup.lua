-- Look the caller up in the CRM; VIPs go to the VIP queue, everyone else
-- (and everyone, when the CRM is slow or down) to the default queue. The
-- look-up has 800 ms: the caller is routed in time whatever Salesforce does.
call.answer()
local ok, res = pcall(connector.query, {connector = "salesforce", timeout = 800,
  query = "SELECT Tier__c FROM Account WHERE Phone = :phone LIMIT 1", params = {phone = call.caller_id_number}})
local account = ok and res.records and res.records[1]
local tier = account and account.Tier__c or "unknown"
log.info("caller looked up", {tier = tier, lookup = ok and "ok" or tostring(res)})
local queue_name = tier == "VIP" and "vip" or "default"
call.set("switchyard_queue", queue_name)
local queued, outcome = pcall(queue.enqueue, queue_name, {priority = tier == "VIP" and 10 or 0, timeout = 300})
if not queued then
  log.warn("queueing not available; routing to the " .. queue_name .. " extension")
  return call.transfer(queue_name .. "-queue", "XML", "default")
end
if outcome.outcome == "answered" then return call.hangup("NORMAL_CLEARING") end
if outcome.outcome ~= "abandoned" and call.ready() then call.transfer("voicemail", "XML", "default") end
