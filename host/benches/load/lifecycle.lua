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
    local id = table.remove(fresh)
    table.insert(renewed, id)
    return wrk.format("PUT", "/v1/sys/leases/renew", headers,
      '{"lease_id":"' .. id .. '","increment":3600}')
  end
  turn = turn % #paths + 1
  return wrk.format("GET", paths[turn], headers)
end

response = function(status, _, body)
  -- Only a credential's answer carries `username`; renewals answer the lease id too.
  if status == 200 and string.find(body, '"username"', 1, true) then
    local id = string.match(body, '"lease_id":"([^"]+)"')
    if id then
      table.insert(fresh, id)
    end
  end
end
