-- Refresh rotation: every response carries the next refresh token, so each connection chains
-- its own family. bench/run writes one starting token per line to BENCH_TOKENS; each thread takes
-- its share. wrk calls request() once more per thread than it has connections, so bench/run makes
-- a few spare tokens.
dofile(os.getenv("BENCH_DIR") .. "/report.lua")
local threads = {}
local counter = 0
function setup(thread)
  counter = counter + 1
  thread:set("id", counter)
  table.insert(threads, thread)
end
function init(args)
  queue = {}
  local n, i = tonumber(os.getenv("BENCH_THREADS")), 0
  for line in io.lines(os.getenv("BENCH_TOKENS")) do
    i = i + 1
    if (i - 1) % n == id - 1 then table.insert(queue, line) end
  end
  wrk.method = "POST"
  wrk.headers["Authorization"] = os.getenv("BENCH_AUTH")
  wrk.headers["Content-Type"] = "application/json"
end
function request()
  local token = table.remove(queue, 1)
  return wrk.format(nil, nil, nil,
    '{"grant_type":"refresh_token","refresh_token_data":{"refresh_token":"' .. token .. '"}}')
end
function response(status, headers, body)
  local token = body:match('"refresh_token":"([^"]+)"')
  if token then table.insert(queue, token) end
end
