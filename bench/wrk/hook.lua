-- wrk script for `make bench`: every request is a new, validly signed delivery.
--
--   wrk ... -s bench/wrk/hook.lua URL -- github BODY_FILE KEY_FILE
--   wrk ... -s bench/wrk/hook.lua URL -- trigger TOKEN_FILE PROJECT ENVIRONMENT
--   wrk ... -s bench/wrk/hook.lua URL -- approve TOKEN_FILE FIRST_JOB BLOCK
--   wrk ... -s bench/wrk/hook.lua URL -- heartbeat KEY_FILE JOB FENCING_TOKEN
--   wrk -t N -c N ... -s bench/wrk/hook.lua URL -- log KEY_FILE DATA_FILE JOBS_FILE
--
-- github:  POST BODY_FILE (the real 7,324-byte GitHub push payload) with its "after" sha replaced
--          by a 40-hex value unique to the request, X-GitHub-Delivery unique too, and
--          X-Hub-Signature-256 = sha256=HMAC-SHA256(key, body) computed here with libsodium (LuaJIT
--          FFI), exactly as GitHub signs. Used for draven's webhook-receive, the C floor handler,
--          adnanh/webhook and the C hello CGI alike, so every target gets the same bytes.
-- trigger: POST /api/v1/deploys {"project","environment","ref"} with a bearer token read from
--          TOKEN_FILE (never in argv) and a unique branch name per request.
-- approve: POST /api/v1/jobs/{id}/approvals {"decision":"approve"}, each request on its own job
--          (thread t takes FIRST_JOB + (t - 1) * BLOCK, + 1, …): the seeded waiting jobs.
-- heartbeat: POST /api/v1/jobs/JOB/heartbeat {"fencing_token", "progress"} signed as a runner
--          signs: X-Draven-Timestamp, X-Draven-Signature = v1=HMAC-SHA256(key, ts "." body).
-- log:     POST /hooks/runner/log {"job_id", "fencing_token", "seq", "data"} (DATA_FILE: the chunk in
--          base64), signed as heartbeats are. Thread t streams to the job on line t of JOBS_FILE
--          ("JOB FENCING_TOKEN NEXT_SEQ"), seq NEXT_SEQ, + 1, …: run with one connection per thread
--          (-t N -c N), since a job takes its chunks in order and wrk waits for each answer; the
--          next seq after a 2xx, the same again after anything else (as the shell runner does).
--
-- done() prints one line "BENCH_JSON {...}" with requests, 2xx, non-2xx, socket errors, rps and
-- latency percentiles (µs), which bench/bench.py parses.
local ffi = require("ffi")

local threads = {}
local counter = 0
local next_thread = 0

function setup(thread)
  next_thread = next_thread + 1
  thread:set("thread_id", next_thread)
  table.insert(threads, thread)
end

local function read_file(path)
  local f = assert(io.open(path, "rb"))
  local data = f:read("*a")
  f:close()
  return data
end

local mode, body_head, body_tail, key, token, project, environment, first_job, block, job, fencing, data, seq
local sodium, state, mac, hex

ffi.cdef [[
  int sodium_init(void);
  size_t crypto_auth_hmacsha256_statebytes(void);
  int crypto_auth_hmacsha256_init(void *state, const unsigned char *key, size_t keylen);
  int crypto_auth_hmacsha256_update(void *state, const unsigned char *in, unsigned long long inlen);
  int crypto_auth_hmacsha256_final(void *state, unsigned char *out);
  char *sodium_bin2hex(char *hex, size_t hex_maxlen, const unsigned char *bin, size_t bin_len);
]]

sent, ok, bad = 0, 0, 0

function init(args)
  mode = args[1]
  if mode == "github" or mode == "heartbeat" or mode == "log" then
    sodium = ffi.load("sodium")
    assert(sodium.sodium_init() >= 0)
    state = ffi.new("uint8_t[?]", tonumber(sodium.crypto_auth_hmacsha256_statebytes()))
    mac = ffi.new("uint8_t[32]")
    hex = ffi.new("char[65]")
  end
  if mode == "heartbeat" then
    key = read_file(args[2])
    job, fencing = tonumber(args[3]), tonumber(args[4])
  elseif mode == "log" then
    key = read_file(args[2])
    data = read_file(args[3])
    local n = 0
    for line in io.lines(args[4]) do
      n = n + 1
      if n == (thread_id or 1) then
        local j, t, s = line:match("^(%d+) (%d+) (%d+)$")
        job, fencing, seq = tonumber(j), tonumber(t), tonumber(s)
      end
    end
    assert(job, "no job for thread " .. tostring(thread_id) .. " in " .. args[4] .. ": run with -t N -c N")
  elseif mode == "github" then
    local body = read_file(args[2])
    local at = assert(body:find('"after": "', 1, true), "no \"after\" field in the body")
    local value = at + #'"after": "'
    body_head, body_tail = body:sub(1, value - 1), body:sub(value + 40)
    key = read_file(args[3])
  elseif mode == "trigger" then
    token = read_file(args[2]):gsub("%s+$", "")
    project, environment = args[3], args[4]
  elseif mode == "approve" then
    token = read_file(args[2]):gsub("%s+$", "")
    first_job, block = tonumber(args[3]), tonumber(args[4])
  else
    error("mode must be github, trigger, approve, heartbeat or log")
  end
end

-- 40 hex characters unique to this thread and request (and to this run, through the clock).
local stamp = string.format("%08x", os.time() % 0xffffffff)
local function unique()
  counter = counter + 1
  return string.format("%s%04x%028x", stamp, thread_id or 0, counter)
end

local function hmac_hex(message)
  sodium.crypto_auth_hmacsha256_init(state, key, #key)
  sodium.crypto_auth_hmacsha256_update(state, message, #message)
  sodium.crypto_auth_hmacsha256_final(state, mac)
  sodium.sodium_bin2hex(hex, 65, mac, 32)
  return ffi.string(hex, 64)
end

local function sign(body)
  return "sha256=" .. hmac_hex(body)
end

function request()
  sent = sent + 1
  local id = unique()
  if mode == "github" then
    local body = body_head .. id .. body_tail
    return wrk.format("POST", nil, {
      ["Content-Type"] = "application/json",
      ["User-Agent"] = "GitHub-Hookshot/bench",
      ["X-GitHub-Event"] = "push",
      ["X-GitHub-Delivery"] = id,
      ["X-Hub-Signature-256"] = sign(body),
    }, body)
  end
  if mode == "heartbeat" then
    local body = string.format('{"fencing_token":%d,"progress":{"step":"deploy","percent":%d}}', fencing, counter % 100)
    local ts = tostring(os.time())
    return wrk.format("POST", "/api/v1/jobs/" .. job .. "/heartbeat", {
      ["Content-Type"] = "application/json",
      ["X-Draven-Timestamp"] = ts,
      ["X-Draven-Signature"] = "v1=" .. hmac_hex(ts .. "." .. body),
    }, body)
  end
  if mode == "log" then
    -- seq moves on in response(): wrk builds one request it never sends when a thread starts.
    local body = string.format('{"job_id":%d,"fencing_token":%d,"seq":%d,"data":"%s"}', job, fencing, seq, data)
    local ts = tostring(os.time())
    return wrk.format("POST", "/hooks/runner/log", {
      ["Content-Type"] = "application/json",
      ["X-Draven-Timestamp"] = ts,
      ["X-Draven-Signature"] = "v1=" .. hmac_hex(ts .. "." .. body),
    }, body)
  end
  if mode == "approve" then
    assert(counter <= block, "more requests than seeded jobs in this thread's block")
    local job = first_job + (thread_id - 1) * block + counter - 1
    return wrk.format("POST", "/api/v1/jobs/" .. job .. "/approvals", {
      ["Content-Type"] = "application/json",
      ["Authorization"] = "Bearer " .. token,
    }, '{"decision":"approve"}')
  end
  local body = string.format('{"project":"%s","environment":"%s","ref":"refs/heads/bench-%s"}', project, environment, id)
  return wrk.format("POST", nil, {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. token,
  }, body)
end

function response(status, headers, body)
  if status >= 200 and status < 300 then ok = ok + 1 else bad = bad + 1 end
  if mode == "log" and status >= 200 and status < 300 then seq = seq + 1 end  -- else the runner sends it again
end

function done(summary, latency, requests)
  local s, o, b = 0, 0, 0
  for _, t in ipairs(threads) do
    s, o, b = s + t:get("sent"), o + t:get("ok"), b + t:get("bad")
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"sent":%d,"ok":%d,"not_ok":%d,"socket_errors":%d,"duration_us":%d,"rps":%.1f,' ..
    '"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d}\n',
    summary.requests, s, o, b, e.connect + e.read + e.write + e.timeout, summary.duration,
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
