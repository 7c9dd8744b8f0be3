-- Return reservations whose lease expired (their worker died or hung) to their queue.
-- Idempotent and safe to run from every worker at once: each expired id is moved once.
-- KEYS[1] inflight ZSET of one queue
-- KEYS[2] ready    ZSET of that queue
-- KEYS[3] messages HASH id -> envelope
-- KEYS[4] owners   HASH id -> owner token
-- KEYS[5] sequence STRING arrival counter
-- KEYS[6] wake     LIST of that queue
-- ARGV[1] the most ids to move in one call
-- Returns the ids moved.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local expired = redis.call('ZRANGE', KEYS[1], '-inf', now, 'BYSCORE', 'LIMIT', 0, tonumber(ARGV[1]))
for _, id in ipairs(expired) do
  redis.call('ZREM', KEYS[1], id)
  redis.call('HDEL', KEYS[4], id)
  local envelope = redis.call('HGET', KEYS[3], id)
  if envelope then
    local p = tonumber(string.match(envelope, '^2:(%-?%d+)$'))
    if not p then
      local ok, data = pcall(cjson.decode, envelope)
      p = (ok and type(data) == 'table' and type(data.p) == 'number') and data.p or 0
    end
    redis.call('ZADD', KEYS[2], (100 - p) * 1e13 + redis.call('INCR', KEYS[5]), id)
  end
end
if #expired > 0 then
  redis.call('LPUSH', KEYS[6], '1')
  redis.call('LTRIM', KEYS[6], 0, 63)
end
return expired
