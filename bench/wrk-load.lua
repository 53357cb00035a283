-- One wrk load for bench/side-by-side.sh. The target and operation come from the
-- environment so one file serves every row of the table:
--   BENCH_TARGET      raft-kv | etcd
--   BENCH_OP          put | get-linearizable | get-lease | get-serializable
--   BENCH_KEYS        keys drawn uniformly from k1..kN
--   BENCH_VALUE_BYTES value size for puts
--   BENCH_TOKEN       bearer token for raft-kv (optional)
-- At the end it prints one machine-readable line that the script parses.

local target = os.getenv("BENCH_TARGET") or "raft-kv"
local op = os.getenv("BENCH_OP") or "put"
local keys = tonumber(os.getenv("BENCH_KEYS") or "100000")
local value_bytes = tonumber(os.getenv("BENCH_VALUE_BYTES") or "100")
local token = os.getenv("BENCH_TOKEN") or ""

local alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
local function base64(data)
  return ((data:gsub(".", function(x)
    local bits, byte = "", x:byte()
    for i = 8, 1, -1 do bits = bits .. (byte % 2 ^ i - byte % 2 ^ (i - 1) > 0 and "1" or "0") end
    return bits
  end) .. "0000"):gsub("%d%d%d?%d?%d?%d?", function(x)
    if #x < 6 then return "" end
    local c = 0
    for i = 1, 6 do c = c + (x:sub(i, i) == "1" and 2 ^ (6 - i) or 0) end
    return alphabet:sub(c + 1, c + 1)
  end) .. ({ "", "==", "=" })[#data % 3 + 1])
end

local value = string.rep("v", value_bytes)
local etcd_value = nil
local headers = {}
local counter = 0

function init(args)
  math.randomseed(os.time() + (tonumber(tostring({}):match("0x(%x+)"), 16) or 0) % 100000)
  if target == "etcd" then
    if op == "put" then etcd_value = base64(value) end
    headers["Content-Type"] = "application/json"
  elseif token ~= "" then
    headers["Authorization"] = "Bearer " .. token
  end
end

local function build(key)
  if target == "etcd" then
    if op == "put" then
      return wrk.format("POST", "/v3/kv/put", headers,
        '{"key":"' .. base64(key) .. '","value":"' .. etcd_value .. '"}')
    end
    local serializable = (op ~= "get-linearizable") and ',"serializable":true' or ""
    return wrk.format("POST", "/v3/kv/range", headers,
      '{"key":"' .. base64(key) .. '"' .. serializable .. '}')
  end
  if op == "put" then
    return wrk.format("PUT", "/v1/kv/" .. key, headers, value)
  end
  local consistency = (op == "get-linearizable") and "linearizable" or "lease"
  return wrk.format("GET", "/v1/kv/" .. key .. "?consistency=" .. consistency, headers)
end

-- Each key's request is built once and kept (small values only: 100k keys of 100 bytes
-- are ~25 MB per thread), so after the first pass over the keys wrk spends its CPU on the
-- connections rather than in Lua (building every request cost it about as much CPU per
-- get as the servers used). The keys are still drawn uniformly for every request.
local cache_requests = value_bytes <= 4096
local cached = {}

function request()
  local index = math.random(keys)
  local req = cached[index]
  if req == nil then
    req = build("k" .. index)
    if cache_requests then cached[index] = req end
  end
  return req
end

function done(summary, latency, requests)
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write
    + summary.errors.status + summary.errors.timeout
  io.write(string.format(
    "RESULT requests=%d duration_us=%d errors=%d status_errors=%d bytes=%d p50_us=%d p99_us=%d p999_us=%d\n",
    summary.requests, summary.duration, errors, summary.errors.status, summary.bytes,
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9)))
end
