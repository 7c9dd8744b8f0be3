-- Return reservations whose lease expired (their worker died or hung) to their queue.
-- Idempotent and safe to run from every worker at once: each expired id is moved once. The
-- caller wakes the queue's consumers when ids were moved.
-- KEYS[1] inflight ZSET of one queue
-- KEYS[2] ready    ZSET of that queue
-- KEYS[3] messages HASH id -> envelope
-- KEYS[4] owners   HASH id -> owner token
-- KEYS[5] sequence STRING the arrival clock (see ready_score)
-- ARGV[1] the most ids to move in one call
-- Returns {moved, orphans}: the ids moved, and the expired ids without a message (dropped).
local now = now_ms()
local expired = redis.call('ZRANGE', KEYS[1], '-inf', now, 'BYSCORE', 'LIMIT', 0, tonumber(ARGV[1]))
local moved, orphans = {}, {}
for _, id in ipairs(expired) do
  redis.call('ZREM', KEYS[1], id)
  redis.call('HDEL', KEYS[4], id)
  local envelope = redis.call('HGET', KEYS[3], id)
  if envelope then
    redis.call('ZADD', KEYS[2], ready_score(priority_of(envelope), KEYS[5], 0, now), id)
    table.insert(moved, id)
  else
    table.insert(orphans, id)
  end
end
return {moved, orphans}
