-- One wrk script for the three HTTP scenarios of the benchmark.
--
--   wrk -s mall.lua URL -- ping     NTHREADS
--   wrk -s mall.lua URL -- checkin  NTHREADS TOKENS_FILE FIRST
--   wrk -s mall.lua URL -- purchase NTHREADS CODES_FILE FIRST MERCHANT_KEY RECEIPT_PREFIX OCCURRED_AT
--   wrk -s mall.lua URL -- take     NTHREADS TOKENS_FILE FIRST STORE_IDS
--
-- A check-in is sent once per member: request n of thread t uses line FIRST + t + n*NTHREADS of
-- TOKENS_FILE (0-based), so no two requests of a run share a member. A purchase gets a receipt
-- number of its own (RECEIPT_PREFIX-t-n) and the member codes of CODES_FILE in turn. A take-number
-- request is a member's (as a check-in is) at one of the restaurants STORE_IDS (comma-separated)
-- in turn, for a party of 1 to 6.
-- done() prints one line, "WRK_JSON {...}", with the counts, the status codes and the latency
-- percentiles (microseconds) for the Python side to read.

local threads = {}

function setup(thread)
   thread:set("tid", #threads)
   table.insert(threads, thread)
end

local function read_lines(path)
   local lines = {}
   for line in io.lines(path) do
      if line ~= "" then lines[#lines + 1] = line end
   end
   return lines
end

function init(args)
   mode = args[1]
   nthreads = tonumber(args[2])
   statuses = {}
   sent = 0          -- requests this thread has built
   last_index = -1   -- the highest data line this thread has used
   exhausted = 0     -- requests built after the data ran out (they reuse lines)
   if mode == "ping" then
      ping_request = wrk.format("GET", "/api/v1/ping")
   elseif mode == "checkin" or mode == "purchase" or mode == "take" then
      lines = read_lines(args[3])
      first = tonumber(args[4])
      if mode == "purchase" then
         merchant_key = args[5]
         receipt_prefix = args[6]
         occurred_at = args[7]
      elseif mode == "take" then
         stores = {}
         for id in string.gmatch(args[5], "%d+") do stores[#stores + 1] = id end
      end
   else
      error("unknown mode " .. tostring(mode))
   end
end

local function next_line()
   local index = first + tid + sent * nthreads
   sent = sent + 1
   if index > last_index then last_index = index end
   if index >= #lines then
      exhausted = exhausted + 1
      index = index % #lines
   end
   return lines[index + 1]
end

function request()
   if mode == "ping" then
      sent = sent + 1
      return ping_request
   elseif mode == "checkin" then
      local token = next_line()
      return wrk.format("POST", "/api/v1/checkins",
         {["Authorization"] = "Bearer " .. token, ["Content-Type"] = "application/json"}, "{}")
   elseif mode == "take" then
      local n = sent
      local token = next_line()
      local store = stores[(tid + n) % #stores + 1]
      return wrk.format("POST", "/api/v1/stores/" .. store .. "/queue/tickets",
         {["Authorization"] = "Bearer " .. token, ["Content-Type"] = "application/json"},
         string.format('{"party_size":%d}', 1 + (n * 7 + tid) % 6))
   else
      local n = sent
      local code = next_line()
      local body = string.format(
         '{"member_code":"%s","amount_fen":%d,"receipt_no":"%s-%d-%d","occurred_at":"%s"}',
         code, 1000 + (n * 7919) % 99000, receipt_prefix, tid, n, occurred_at)
      return wrk.format("POST", "/api/v1/merchant/purchases",
         {["Authorization"] = "Bearer " .. merchant_key, ["Content-Type"] = "application/json"}, body)
   end
end

function response(status, headers, body)
   statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
   local merged, total_sent, max_index, total_exhausted = {}, 0, -1, 0
   for _, thread in ipairs(threads) do
      for status, count in pairs(thread:get("statuses")) do
         merged[status] = (merged[status] or 0) + count
      end
      total_sent = total_sent + thread:get("sent")
      total_exhausted = total_exhausted + thread:get("exhausted")
      local used = thread:get("last_index")
      if used > max_index then max_index = used end
   end
   local parts = {}
   for status, count in pairs(merged) do
      parts[#parts + 1] = string.format('"%d":%d', status, count)
   end
   local e = summary.errors
   io.write(string.format(
      'WRK_JSON {"requests":%d,"duration_us":%d,"bytes":%d,"statuses":{%s},' ..
      '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
      '"latency_us":{"p50":%d,"p90":%d,"p99":%d,"max":%d,"mean":%.1f},' ..
      '"sent":%d,"last_index":%d,"exhausted":%d}\n',
      summary.requests, summary.duration, summary.bytes, table.concat(parts, ","),
      e.connect, e.read, e.write, e.status, e.timeout,
      latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean,
      total_sent, max_index, total_exhausted))
end
