-- wrk: create a token with a TTL on every request, OpenBao's cheapest
-- lease-creating call (a token is a lease in Vault and OpenBao).
-- BENCH_TOKEN: the token that creates them.
local token = os.getenv("BENCH_TOKEN")
local body = '{"ttl":"1h","policies":["default"],"no_default_policy":false}'

request = function()
  return wrk.format("POST", "/v1/auth/token/create", {
    ["X-Vault-Token"] = token,
    ["Content-Type"] = "application/json",
  }, body)
end
