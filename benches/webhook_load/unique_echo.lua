-- Each request is a distinct echo delivery (its own idempotency key), so every one is accepted.
local counter = 0
local thread_id = 0
local threads = {}

function setup(thread)
  thread:set("tid", thread_id)
  thread_id = thread_id + 1
  table.insert(threads, thread)
end

function init(args)
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  accepted, other = 0, 0
end

function request()
  counter = counter + 1
  local body = string.format('{"text":"load %d-%d","id":"%d-%d"}', tid, counter, tid, counter)
  return wrk.format(nil, nil, nil, body)
end

function response(status, headers, body)
  if status == 200 and string.find(body, '"accepted"', 1, true) then
    accepted = accepted + 1
  else
    other = other + 1
  end
end

function done(summary, latency, requests)
  local a, o = 0, 0
  for _, t in ipairs(threads) do
    a = a + t:get("accepted")
    o = o + t:get("other")
  end
  io.write(string.format("accepted: %d, not accepted: %d\n", a, o))
  io.write(string.format("accepted per second: %.0f\n", a / (summary.duration / 1e6)))
end
