-- wrk: every lease goes through its whole life: issued, renewed once, revoked.
-- So a third of the requests issue, a third renew and a third revoke.
-- BENCH_TOKEN: the token; BENCH_PATHS: comma-separated credential paths
-- (e.g. /v1/bench/creds/load,/v1/web/creds/reader), issued from in turn.
local token = os.getenv("BENCH_TOKEN")
local paths = {}
for path in string.gmatch(os.getenv("BENCH_PATHS"), "[^,]+") do
  table.insert(paths, path)
end
local headers = { ["X-Vault-Token"] = token, ["Content-Type"] = "application/json" }
local fresh, renewed = {}, {}
local turn = 0

request = function()
  if #renewed > 0 then
    local id = table.remove(renewed)
    return wrk.format("PUT", "/v1/sys/leases/revoke", headers, '{"lease_id":"' .. id .. '"}')
  end
  if #fresh > 0 then
    -- Revoked only once the renewal has answered (see `response`): connections
    -- of a thread share these lists, so a revoke must not overtake its renew.
    local id = table.remove(fresh)
    return wrk.format("PUT", "/v1/sys/leases/renew", headers,
      '{"lease_id":"' .. id .. '","increment":3600}')
  end
  turn = turn % #paths + 1
  return wrk.format("GET", paths[turn], headers)
end

response = function(status, _, body)
  if status ~= 200 then
    return
  end
  local id = string.match(body, '"lease_id":"([^"]+)"')
  if not id then
    return
  end
  -- Only a credential's answer carries `username`; a renewal's is the other one.
  if string.find(body, '"username"', 1, true) then
    table.insert(fresh, id)
  else
    table.insert(renewed, id)
  end
end
