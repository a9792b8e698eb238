-- wrk: GET a credential on every request.
-- BENCH_TOKEN: the token; BENCH_PATH: the path to read (e.g. /v1/bench/creds/load).
local token = os.getenv("BENCH_TOKEN")
local path = os.getenv("BENCH_PATH")

request = function()
  return wrk.format("GET", path, { ["X-Vault-Token"] = token })
end
