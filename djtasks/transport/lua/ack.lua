-- Finish reservations of one queue: forget each id whose caller still owns it, and wake its readers.
-- KEYS[1] inflight   ZSET of the queue
-- KEYS[2] messages   HASH id -> envelope
-- KEYS[3] owners     HASH id -> owner token
-- KEYS[4] deliveries HASH id -> count
-- ARGV[1] n, then n groups of ARGV: id, owner token, channel to publish "done" on ('' for none)
-- Returns one flag per id: 1 if the caller owned it, 0 if its lease had been lost (the id is left alone).
local owned = {}
for i = 0, tonumber(ARGV[1]) - 1 do
  local id, token, channel = ARGV[2 + i * 3], ARGV[3 + i * 3], ARGV[4 + i * 3]
  if channel ~= '' then redis.call('PUBLISH', channel, 'done') end
  if redis.call('HGET', KEYS[3], id) ~= token then
    owned[i + 1] = 0
  else
    redis.call('ZREM', KEYS[1], id)
    redis.call('HDEL', KEYS[2], id)
    redis.call('HDEL', KEYS[3], id)
    redis.call('HDEL', KEYS[4], id)
    owned[i + 1] = 1
  end
end
return owned
