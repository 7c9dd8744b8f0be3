-- Promote due scheduled ids, then reserve ready ids from the first queues that have them.
-- The reservation (lease deadline, owner token, delivery count) is written in the same step
-- as the pop, so a reserved id is never only in a worker's memory. More than one id is taken
-- only while the queue stays deeper than ARGV[5], so a deep queue costs one round trip per
-- batch while a shallow one leaves work for idle workers.
-- KEYS[1] messages   HASH id -> envelope ("2:<priority>"; JSON in releases before)
-- KEYS[2] owners     HASH id -> owner token of the current lease
-- KEYS[3] deliveries HASH id -> times reserved without being acked
-- KEYS[4] sequence   STRING arrival counter
-- KEYS[5..] three keys per queue, in the order to consume: ready ZSET, scheduled ZSET, inflight ZSET
-- ARGV[1] lease_ms, ARGV[2] owner token prefix, ARGV[3] promote limit per queue,
-- ARGV[4] most ids to reserve, ARGV[5] ready ids that must remain before taking another
-- Returns {taken, orphans, recounted}:
--   taken     a flat list of {id, envelope (its first 4097 bytes), deliveries, token, queue_index}
--   orphans   a flat list of {key index, id}: ids found in a ready or scheduled set without a
--             message (acked already, or written by hand), dropped; at most 50 pairs
--   recounted ids whose delivery count was not an integer, counted afresh from 1
local now = now_ms()
local nq = (#KEYS - 4) / 3
local orphans, recounted = {}, {}

local function orphan(key_index, id)
  if #orphans < 100 then
    table.insert(orphans, key_index)
    table.insert(orphans, id)
  end
end

for q = 0, nq - 1 do
  local ready, scheduled = KEYS[5 + q * 3], KEYS[6 + q * 3]
  local due = redis.call('ZRANGE', scheduled, '-inf', now, 'BYSCORE', 'LIMIT', 0, tonumber(ARGV[3]))
  for _, id in ipairs(due) do
    redis.call('ZREM', scheduled, id)
    local envelope = redis.call('HGET', KEYS[1], id)
    if envelope then
      redis.call('ZADD', ready, ready_score(priority_of(envelope), KEYS[4]), id)
    else
      orphan(6 + q * 3, id)
    end
  end
end

local skipped, taken, want, deep = 0, {}, tonumber(ARGV[4]), tonumber(ARGV[5])
for q = 0, nq - 1 do
  local ready, inflight = KEYS[5 + q * 3], KEYS[7 + q * 3]
  while skipped < 1000 and #taken < want * 5 do
    if #taken > 0 and redis.call('ZCARD', ready) <= deep then break end
    local popped = redis.call('ZPOPMIN', ready)
    if #popped == 0 then break end
    local id = popped[1]
    local envelope = redis.call('HGET', KEYS[1], id)
    if envelope and not redis.call('ZSCORE', inflight, id) then
      local deliveries, reset = add_delivery(KEYS[3], id, 1)
      if reset then table.insert(recounted, id) end
      local token = ARGV[2] .. '.' .. (#taken / 5) .. ':' .. deliveries
      redis.call('ZADD', inflight, now + tonumber(ARGV[1]), id)
      redis.call('HSET', KEYS[2], id, token)
      for _, v in ipairs({id, string.sub(envelope, 1, 4097), deliveries, token, q}) do table.insert(taken, v) end
    else
      -- Already acked (no envelope) or already reserved (a duplicate): drop this copy.
      if not envelope then orphan(5 + q * 3, id) end
      skipped = skipped + 1
    end
  end
  if #taken > 0 then break end
end
return {taken, orphans, recounted}
