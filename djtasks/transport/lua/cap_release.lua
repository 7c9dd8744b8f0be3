-- Give back a concurrency slot at the end of an attempt, and take the first waiter to wake.
-- KEYS[1] slots   HASH task id -> owner token
-- KEYS[2] waiters ZSET waiter (JSON [queue, id]) -> ms it parked
-- ARGV[1] id ('' to take the next waiter only), ARGV[2] owner token of the attempt
-- Returns the waiter taken ({} if none waits): the caller wakes it if it is still parked, else takes the next.
if ARGV[1] ~= '' and redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then redis.call('HDEL', KEYS[1], ARGV[1]) end
local taken = redis.call('ZRANGE', KEYS[2], 0, 0)
if #taken > 0 then redis.call('ZREM', KEYS[2], taken[1]) end
return taken
