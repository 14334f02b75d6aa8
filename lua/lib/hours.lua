-- Business hours helpers for policies (loaded with require("hours")).
local M = {}

-- open(spec, t) is true when t (os.date("*t") table) falls in spec:
-- {days = {2,3,4,5,6}, from = 9, to = 17}  (days: 1 = Sunday … 7 = Saturday)
function M.open(spec, t)
  local day_ok = false
  for _, d in ipairs(spec.days) do
    if d == t.wday then day_ok = true end
  end
  return day_ok and t.hour >= spec.from and t.hour < spec.to
end

return M
