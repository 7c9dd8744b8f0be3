-- Take one slot of a task's rate limit (GCRA: a bucket of capacity 1, like Celery's), across
-- all workers. A runtime override in the overrides hash replaces the declared rate.
-- KEYS[1] tat        STRING theoretical arrival time (ms) of the next allowed start
-- KEYS[2] overrides  HASH task name -> rate in ms between starts ("0": no limit)
-- ARGV[1] task name, ARGV[2] declared ms between starts ("0": no limit)
-- Returns 0 when the task may start now, else the ms to wait before asking again.
local interval = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or ARGV[2])
if interval <= 0 then return 0 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat > now then return tat - now end
redis.call('SET', KEYS[1], now + interval, 'PX', math.ceil(interval) + 1000)
return 0
