-- Take a slot of a concurrency cap for a claimed task, or park the task until a slot frees.
-- A slot is tied to the attempt's lease: a holder counts only while the owners hash still names
-- its token (ack, release and the reaper remove it), so a slot held by a dead worker frees with
-- its lease and is dropped here the next time the cap is asked.
-- KEYS[1] slots      HASH task id -> owner token of the attempt holding a slot
-- KEYS[2] waiters    ZSET waiter (JSON [queue, id]) -> ms it parked; woken first in, first out
-- KEYS[3] owners     HASH id -> owner token of the current lease
-- KEYS[4] inflight   ZSET of the claim's queue
-- KEYS[5] scheduled  ZSET of the claim's queue
-- KEYS[6] deliveries HASH id -> times reserved without being acked
-- KEYS[7] index      ZSET key text -> ms last asked, for the admin (kept for keyed caps only)
-- ARGV[1] the cap, ARGV[2] id, ARGV[3] owner token, ARGV[4] waiter, ARGV[5] ms to park before
-- asking again if no release wakes it, ARGV[6] key text, ARGV[7] '1' for a keyed cap
-- Returns 1 when the slot is taken, 0 when parked (the claim is handed back to the scheduled set,
-- uncounted, as release.lua would), -1 when the caller no longer owns the claim (nothing done).
local id, token = ARGV[2], ARGV[3]
if redis.call('HGET', KEYS[3], id) ~= token then return -1 end
local now = now_ms()
if ARGV[7] == '1' then
  redis.call('ZADD', KEYS[7], now, ARGV[6])
  if redis.call('ZCARD', KEYS[7]) > 1000 then redis.call('ZREMRANGEBYRANK', KEYS[7], 0, -1001) end
  redis.call('PEXPIRE', KEYS[7], 86400000)
end
local held = 0
local slots = redis.call('HGETALL', KEYS[1])
for i = 1, #slots, 2 do
  local holder, holder_token = slots[i], slots[i + 1]
  if holder ~= id and redis.call('HGET', KEYS[3], holder) == holder_token then
    held = held + 1
  else
    -- Its lease ended without a release (a dead worker, a lost ack), or an earlier delivery of this id.
    redis.call('HDEL', KEYS[1], holder)
  end
end
if held < tonumber(ARGV[1]) then
  redis.call('HSET', KEYS[1], id, token)
  redis.call('ZREM', KEYS[2], ARGV[4])
  return 1
end
redis.call('ZADD', KEYS[2], 'NX', now, ARGV[4])
redis.call('PEXPIRE', KEYS[2], 86400000)
redis.call('ZREM', KEYS[4], id)
redis.call('HDEL', KEYS[3], id)
add_delivery(KEYS[6], id, -1)
redis.call('ZADD', KEYS[5], now + tonumber(ARGV[5]), id)
return 0
