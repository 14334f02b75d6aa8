-- Look the caller up in the CRM; VIPs go to the VIP queue. Until the
-- connector-proxy and queue-distributor exist, both calls answer "not
-- available" and the policy takes its fallback: the default queue
-- extension.
call.answer()
local ok, account = pcall(connector.query, {connector = "salesforce",
  query = "SELECT Tier__c FROM Account WHERE Phone = :phone", params = {phone = call.caller_id_number}})
local tier = ok and account and account.Tier__c or "unknown"
log.info("caller looked up", {tier = tier, lookup = ok and "ok" or "unavailable"})
local queue_name = tier == "VIP" and "vip" or "default"
local queued, outcome = pcall(queue.enqueue, queue_name, {priority = tier == "VIP" and 10 or 0})
if not queued then
  log.warn("queueing not available; routing to the " .. queue_name .. " extension")
  call.transfer(queue_name .. "-queue", "XML", "default")
end
