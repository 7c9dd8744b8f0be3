-- Publish task ids to one queue, idempotently: an id Redis already knows is left alone.
-- Every key is the queue's own (one hash slot); the caller wakes the queue's consumers.
-- KEYS[1] messages  HASH  id -> envelope ("2:<priority>"); the id is "known" while present
-- KEYS[2] ready     ZSET  id scored by priority, then when it became due (lowest score runs first)
-- KEYS[3] scheduled ZSET  id scored by due time (ms), promoted into ready when due
-- KEYS[4] sequence  STRING the arrival clock, which orders arrivals due at once (see ready_score)
-- ARGV[1] n, then n groups of ARGV: id, envelope, priority (-100..100), due_ms (0 = now)
-- Returns the number of ids newly published.
local now = now_ms()
local n = tonumber(ARGV[1])
local added = 0
for i = 0, n - 1 do
  local id = ARGV[2 + i * 4]
  if redis.call('HSETNX', KEYS[1], id, ARGV[3 + i * 4]) == 1 then
    added = added + 1
    local due = tonumber(ARGV[5 + i * 4])
    if due > now then
      redis.call('ZADD', KEYS[3], due, id)
    else
      redis.call('ZADD', KEYS[2], ready_score(tonumber(ARGV[4 + i * 4]), KEYS[4], due, now), id)
    end
  end
end
return added
