-- Extend the leases of reservations the caller still owns.
-- KEYS[1] inflight ZSET of one queue
-- KEYS[2] owners   HASH id -> owner token
-- ARGV[1] lease_ms, then pairs: id, owner token
-- Returns the ids whose lease was lost (owner changed or gone).
local t = redis.call('TIME')
local deadline = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[1])
local lost = {}
for i = 2, #ARGV, 2 do
  if redis.call('HGET', KEYS[2], ARGV[i]) == ARGV[i + 1] then
    redis.call('ZADD', KEYS[1], 'XX', deadline, ARGV[i])
  else
    table.insert(lost, ARGV[i])
  end
end
return lost
