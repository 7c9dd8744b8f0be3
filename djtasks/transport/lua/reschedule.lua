-- Move a waiting task's start (a debounced call replaced it): from wherever it waits to the scheduled set at due.
-- KEYS[1] ready     ZSET of the task's queue
-- KEYS[2] scheduled ZSET of the task's queue
-- KEYS[3] messages  HASH id -> envelope
-- ARGV[1] id, ARGV[2] due (ms)
-- Returns 1 if moved; 0 if Redis does not hold it waiting (not published yet: its publish or the
-- outbox sweep reads the row's start; reserved: the worker's start reads it and waits).
local id = ARGV[1]
if redis.call('HEXISTS', KEYS[3], id) == 0 then return 0 end
if redis.call('ZSCORE', KEYS[2], id) or redis.call('ZREM', KEYS[1], id) == 1 then
  redis.call('ZADD', KEYS[2], tonumber(ARGV[2]), id)
  return 1
end
return 0
