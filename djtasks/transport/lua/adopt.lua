-- Take in ids that the previous key layout (every key under {PREFIX}:) held for one queue.
-- Idempotent: an id the queue already knows (its message is stored) is left alone.
-- KEYS[1] messages   HASH id -> envelope
-- KEYS[2] deliveries HASH id -> count
-- KEYS[3] sequence   STRING the arrival clock (see ready_score): an adopted task is due now
-- KEYS[4] ready      ZSET
-- KEYS[5] scheduled  ZSET
-- ARGV[1] n, then n groups of ARGV: id, envelope, deliveries ('' when none), due_ms ('' when ready)
-- Ready ids are given in their old order and get new arrival numbers in it, so they keep it.
-- Returns the number of ids taken in.
local adopted = 0
for i = 0, tonumber(ARGV[1]) - 1 do
  local id, envelope, count, due = ARGV[2 + i * 4], ARGV[3 + i * 4], ARGV[4 + i * 4], ARGV[5 + i * 4]
  if redis.call('HSETNX', KEYS[1], id, envelope) == 1 then
    adopted = adopted + 1
    local n = finite(count)
    if n and n >= 0 and n == math.floor(n) then redis.call('HSET', KEYS[2], id, n) end
    local at = finite(due)
    if at then
      redis.call('ZADD', KEYS[5], at, id)
    else
      redis.call('ZADD', KEYS[4], ready_score(priority_of(envelope), KEYS[3], 0, now_ms()), id)
    end
  end
end
return adopted
