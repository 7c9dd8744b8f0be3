-- Publish task ids to one queue, idempotently: an id Redis already knows is left alone.
-- Every key is the queue's own (one hash slot); the caller wakes the queue's consumers.
-- KEYS[1] messages  HASH  id -> envelope ("2:<priority>"); the id is "known" while present
-- KEYS[2] ready     ZSET  id scored by priority, then when it became due (lowest score runs first)
-- KEYS[3] scheduled ZSET  id scored by due time (ms), promoted into ready when due
-- KEYS[4] sequence  STRING the arrival clock, which orders arrivals due at once (see ready_score)
-- ARGV: groups of ids alike, one after another to the end: n, envelope, priority (-100..100),
-- due_ms (0 = now), then the group's n ids. A bulk() block is one group however many ids it has.
-- Returns the number of ids newly published.
--
-- Ids go in by the thousand: HMGET finds those already known, one HSET and one ZADD store the
-- rest (three commands a chunk instead of three an id); a lone id takes HSETNX and ZADD. The arrival clock is read once and
-- written once a call: ids due now take its next values in their order, as next_arrival would
-- give them one by one.
local CHUNK = 1000 -- ids per command (unpack's stack holds a few thousand values)
local now = now_ms()
local added = 0
local known = {} -- ids of this call already stored (an id twice in one call is published once)
local seq = nil -- the arrival clock's last value given out, written back at the end

local function store(first, last, envelope, priority, due)
  local ids = {}
  for i = first, last do ids[#ids + 1] = ARGV[i] end
  local single = first == last -- one id (a call at a time): HSETNX finds and stores it in one command
  local present
  if single then
    present = {redis.call('HSETNX', KEYS[1], ids[1], envelope) == 0}
  else
    present = redis.call('HMGET', KEYS[1], unpack(ids))
  end
  local fields, ready, later = {}, {}, {}
  for i, id in ipairs(ids) do
    if not present[i] and not known[id] then
      known[id] = true
      added = added + 1
      fields[#fields + 1] = id
      fields[#fields + 1] = envelope
      if due > now then
        later[#later + 1] = due
        later[#later + 1] = id
      elseif due > 0 and due < now then -- due before now: ready at its due time, ahead of later arrivals
        ready[#ready + 1] = ready_score(priority, KEYS[4], due, now)
        ready[#ready + 1] = id
      else
        if seq == nil then seq = next_arrival(KEYS[4], now) else seq = seq + 1 end
        ready[#ready + 1] = arrival_score(priority, seq)
        ready[#ready + 1] = id
      end
    end
  end
  if #fields > 0 and not single then redis.call('HSET', KEYS[1], unpack(fields)) end
  if #ready > 0 then redis.call('ZADD', KEYS[2], unpack(ready)) end
  if #later > 0 then redis.call('ZADD', KEYS[3], unpack(later)) end
end

local i = 1
while i <= #ARGV do
  local n = tonumber(ARGV[i])
  local envelope, priority, due = ARGV[i + 1], tonumber(ARGV[i + 2]), tonumber(ARGV[i + 3])
  local first = i + 4
  for start = first, first + n - 1, CHUNK do
    store(start, math.min(start + CHUNK - 1, first + n - 1), envelope, priority, due)
  end
  i = first + n
end
if seq ~= nil and seq ~= arrivals[KEYS[4]] then
  redis.call('SET', KEYS[4], seq)
  arrivals[KEYS[4]] = seq
end
return added
