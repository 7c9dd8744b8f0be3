-- Take one slot of a task's rate limit for one key (GCRA, a bucket of capacity 1, as ratelimit.lua),
-- across all workers. A runtime override of the task's rate replaces the declared one for every key.
-- KEYS[1] bucket     STRING theoretical arrival time (ms) of this key's next allowed start
-- KEYS[2] overrides  HASH task name -> rate in ms between starts ("0": no limit)
-- KEYS[3] index      ZSET key text -> ms of its last start, for the admin (entries older than a bucket dropped)
-- ARGV[1] task name, ARGV[2] declared ms between starts, ARGV[3] key text
-- An override that is not a number of ms in 0..1e12 is ignored, and a next start that is not a
-- number, or further away than one interval, counts as none (Redis holds what anyone wrote).
-- A quiet key's bucket expires one interval (and a second) after its last start, and so does its entry.
-- Returns 0 when the task may start now, else the ms to wait before asking again.
local interval = finite(redis.call('HGET', KEYS[2], ARGV[1]))
if interval == nil or interval < 0 or interval > 1e12 then interval = tonumber(ARGV[2]) end
if interval <= 0 then return 0 end
local now = now_ms()
local ttl = math.ceil(interval) + 1000
local tat = finite(redis.call('GET', KEYS[1])) or 0
if tat > now + interval then tat = 0 end
if tat > now then return tat - now end
redis.call('SET', KEYS[1], now + interval, 'PX', ttl)
redis.call('ZADD', KEYS[3], now, ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - ttl)
redis.call('PEXPIRE', KEYS[3], ttl)
return 0
