-- Promote due scheduled ids, then reserve the next ready id of the first queue that has one.
-- The reservation (lease deadline, owner token, delivery count) is written in the same step
-- as the pop, so a reserved id is never only in a worker's memory.
-- KEYS[1] messages   HASH id -> envelope
-- KEYS[2] owners     HASH id -> owner token of the current lease
-- KEYS[3] deliveries HASH id -> times reserved without being acked
-- KEYS[4] sequence   STRING arrival counter
-- KEYS[5..] three keys per queue, in the order to consume: ready ZSET, scheduled ZSET, inflight ZSET
-- ARGV[1] lease_ms, ARGV[2] owner token prefix, ARGV[3] promote limit per queue
-- Returns {id, envelope, deliveries, token, queue_index} or nil when every queue is empty.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local nq = (#KEYS - 4) / 3

local function priority_of(envelope)
  local ok, data = pcall(cjson.decode, envelope)
  if ok and type(data) == 'table' and type(data.p) == 'number' then return data.p end
  return 0
end

for q = 0, nq - 1 do
  local ready, scheduled = KEYS[5 + q * 3], KEYS[6 + q * 3]
  local due = redis.call('ZRANGE', scheduled, '-inf', now, 'BYSCORE', 'LIMIT', 0, tonumber(ARGV[3]))
  for _, id in ipairs(due) do
    redis.call('ZREM', scheduled, id)
    local envelope = redis.call('HGET', KEYS[1], id)
    if envelope then
      local seq = redis.call('INCR', KEYS[4])
      redis.call('ZADD', ready, (100 - priority_of(envelope)) * 1e13 + seq, id)
    end
  end
end

local skipped = 0
for q = 0, nq - 1 do
  local ready, inflight = KEYS[5 + q * 3], KEYS[7 + q * 3]
  while skipped < 1000 do
    local popped = redis.call('ZPOPMIN', ready)
    if #popped == 0 then break end
    local id = popped[1]
    local envelope = redis.call('HGET', KEYS[1], id)
    if envelope and not redis.call('ZSCORE', inflight, id) then
      local deliveries = redis.call('HINCRBY', KEYS[3], id, 1)
      local token = ARGV[2] .. ':' .. deliveries
      redis.call('ZADD', inflight, now + tonumber(ARGV[1]), id)
      redis.call('HSET', KEYS[2], id, token)
      return {id, envelope, deliveries, token, q}
    end
    -- Already acked (no envelope) or already reserved (a duplicate): drop this copy.
    skipped = skipped + 1
  end
end
return nil
