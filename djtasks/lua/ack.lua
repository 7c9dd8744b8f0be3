-- Finish a reservation: forget the id if the caller still owns it, and wake waiting readers.
-- KEYS[1] inflight   ZSET of the task's queue
-- KEYS[2] messages   HASH id -> envelope
-- KEYS[3] owners     HASH id -> owner token
-- KEYS[4] deliveries HASH id -> count
-- ARGV[1] id, ARGV[2] owner token, ARGV[3] channel to publish "done" on ('' for none)
-- Returns 1 if the caller owned the id, 0 if its lease had been lost (the id is left alone).
if ARGV[3] ~= '' then redis.call('PUBLISH', ARGV[3], 'done') end
if redis.call('HGET', KEYS[3], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
redis.call('HDEL', KEYS[4], ARGV[1])
return 1
