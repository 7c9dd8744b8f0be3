-- Take one slot of a task's rate limit (GCRA: a bucket of capacity 1, like Celery's), across
-- all workers. A runtime override in the overrides hash replaces the declared rate.
-- KEYS[1] tat        STRING theoretical arrival time (ms) of the next allowed start
-- KEYS[2] overrides  HASH task name -> rate in ms between starts ("0": no limit)
-- ARGV[1] task name, ARGV[2] declared ms between starts ("0": no limit)
-- An override that is not a number of ms in 0..1e12 is ignored (the declared rate applies),
-- and a next start that is not a number, or further away than one interval, counts as none.
-- Returns 0 when the task may start now, else the ms to wait before asking again.
local interval = finite(redis.call('HGET', KEYS[2], ARGV[1]))
if interval == nil or interval < 0 or interval > 1e12 then interval = tonumber(ARGV[2]) end
if interval <= 0 then return 0 end
local now = now_ms()
local tat = finite(redis.call('GET', KEYS[1])) or 0
if tat > now + interval then tat = 0 end
if tat > now then return tat - now end
redis.call('SET', KEYS[1], now + interval, 'PX', math.ceil(interval) + 1000)
return 0
