-- Shared by the scripts that count, order or prioritise (prepended to them when registered).
-- Redis holds what anyone wrote: a count, a sequence or an envelope that is not what the
-- scripts wrote must not make a script fail, or every claim of the queue would fail with it.

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- A finite number from a string, or nil (tonumber also reads "inf", "nan" and hexadecimal).
local function finite(s)
  local n = tonumber(s)
  if n == nil or n ~= n or n == math.huge or n == -math.huge then return nil end
  return n
end

-- Add `by` to an id's delivery count. A count that is not an integer restarts from
-- max(by, 0); the second value says so.
local function add_delivery(key, id, by)
  local n = redis.pcall('HINCRBY', key, id, by)
  if type(n) ~= 'number' then
    n = math.max(by, 0)
    redis.call('HSET', key, id, n)
    return n, true
  end
  return n, false
end

-- The priority of an envelope: "2:<priority>", or the JSON {"v": 1, ..., "p": priority} of
-- earlier releases; 0 when it names none in -100..100.
local function priority_of(envelope)
  local p = tonumber(string.match(envelope, '^2:(%-?%d%d?%d?)$'))
  if not p then
    local ok, data = pcall(cjson.decode, envelope)
    p = (ok and type(data) == 'table' and type(data.p) == 'number') and data.p or 0
  end
  if p ~= p or p < -100 or p > 100 then return 0 end
  return math.floor(p)
end

-- The arrival clock: Redis' time in ms, kept increasing, so that arrivals in the same millisecond
-- keep their order (it runs ahead of the clock only while more than one task a millisecond
-- arrives). A value that is not a time in 0..9e12 restarts from the clock. Read once a script.
local arrivals = {}
local function next_arrival(key, now)
  local last = arrivals[key]
  if last == nil then last = finite(redis.pcall('GET', key)) end
  local seq = now
  if last and last >= now and last < 9e12 then seq = math.floor(last) + 1 end
  arrivals[key] = seq
  redis.call('SET', key, seq)
  return seq
end

-- The ready-set score of a task: priority band first (higher runs first), then the time it became
-- due, in ms: due_ms for one that was due before now (a past run_after, a delay that expired),
-- the arrival clock for one due now (due_ms 0). So among tasks of one priority the earliest due
-- starts first, and those due at once start in arrival order. arrival_score: the score of a
-- task of this priority that became due at `ms` (an arrival clock value, or a past due time).
local function arrival_score(priority, ms)
  return (100 - priority) * 1e13 + ms
end

local function ready_score(priority, seq_key, due_ms, now)
  local due = finite(due_ms)
  if due and due > 0 and due < now then
    return arrival_score(priority, math.floor(due))
  end
  return arrival_score(priority, next_arrival(seq_key, now))
end

