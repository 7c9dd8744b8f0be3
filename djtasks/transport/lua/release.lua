-- Hand a reservation back to its queue (shutdown, or its child process died); the caller wakes
-- the queue's consumers.
-- KEYS[1] inflight   ZSET of the task's queue
-- KEYS[2] ready      ZSET of the task's queue
-- KEYS[3] scheduled  ZSET of the task's queue
-- KEYS[4] owners     HASH id -> owner token
-- KEYS[5] deliveries HASH id -> count
-- KEYS[6] sequence   STRING the arrival clock (see ready_score)
-- ARGV[1] id, ARGV[2] owner token, ARGV[3] delay_ms, ARGV[4] priority,
-- ARGV[5] '1' when this delivery should not count towards the poison limit (it never started)
-- Returns 1 if released, 0 if the caller no longer owned the id.
if redis.call('HGET', KEYS[4], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[4], ARGV[1])
if ARGV[5] == '1' then add_delivery(KEYS[5], ARGV[1], -1) end
local delay = tonumber(ARGV[3])
if delay > 0 then
  redis.call('ZADD', KEYS[3], now_ms() + delay, ARGV[1])
else
  redis.call('ZADD', KEYS[2], ready_score(tonumber(ARGV[4]), KEYS[6], 0, now_ms()), ARGV[1])
end
return 1
