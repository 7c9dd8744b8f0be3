-- Promote a queue's due scheduled ids, then reserve ready ids of that queue.
-- The reservation (lease deadline, owner token, delivery count) is written in the same step
-- as the pop, so a reserved id is never only in a worker's memory. More than one id is taken
-- only while the queue stays deeper than ARGV[5], so a deep queue costs one round trip per
-- batch while a shallow one leaves work for idle workers. Every key is the queue's own (one
-- hash slot): a consumer of several queues sends one call per queue (queues.py). A paused queue
-- (its flag key exists: the admin's pause, on every worker until resumed) gives nothing; its due
-- ids still become ready.
-- KEYS[1] messages   HASH id -> envelope ("2:<priority>"; JSON in releases before)
-- KEYS[2] owners     HASH id -> owner token of the current lease
-- KEYS[3] deliveries HASH id -> times reserved without being acked
-- KEYS[4] sequence   STRING the arrival clock (see ready_score)
-- KEYS[5] ready      ZSET id scored by priority, then when it became due
-- KEYS[6] scheduled  ZSET id scored by due time (ms)
-- KEYS[7] inflight   ZSET id scored by lease deadline (ms)
-- KEYS[8] paused     STRING the queue's pause flag (transport/fleet.py)
-- ARGV[1] lease_ms, ARGV[2] owner token prefix, ARGV[3] promote limit,
-- ARGV[4] most ids to reserve, ARGV[5] ready ids that must remain before taking another
-- Returns {taken, orphans, recounted, idle_ms}:
--   taken     a flat list of {id, envelope (its first 4097 bytes), deliveries, token}
--   orphans   a flat list of {key index, id}: ids found in the ready or scheduled set without a
--             message (acked already, or written by hand), dropped; at most 50 pairs
--   recounted ids whose delivery count was not an integer, counted afresh from 1
--   idle_ms   -1 if the ready set still holds ids (or the queue is paused); else the ms until the
--             first scheduled id is due (0: due now), or -2 if none is scheduled. What arrives
--             ready later pushes a wake-up token (worker/child.py waits for one, or for idle_ms).
local now = now_ms()
local orphans, recounted = {}, {}

local function orphan(key_index, id)
  if #orphans < 100 then
    table.insert(orphans, key_index)
    table.insert(orphans, id)
  end
end

local due = redis.call('ZRANGE', KEYS[6], '-inf', now, 'BYSCORE', 'LIMIT', 0, tonumber(ARGV[3]), 'WITHSCORES')
for d = 1, #due, 2 do
  local id = due[d]
  redis.call('ZREM', KEYS[6], id)
  local envelope = redis.call('HGET', KEYS[1], id)
  if envelope then
    -- Ranked by its due time: among its priority it starts before what became due after it.
    redis.call('ZADD', KEYS[5], ready_score(priority_of(envelope), KEYS[4], due[d + 1], now), id)
  else
    orphan(6, id)
  end
end

local skipped, taken, want, deep = 0, {}, tonumber(ARGV[4]), tonumber(ARGV[5])
local paused = redis.call('EXISTS', KEYS[8]) == 1
while not paused and skipped < 1000 and #taken < want * 4 do
  if #taken > 0 and redis.call('ZCARD', KEYS[5]) <= deep then break end
  local popped = redis.call('ZPOPMIN', KEYS[5])
  if #popped == 0 then break end
  local id = popped[1]
  local envelope = redis.call('HGET', KEYS[1], id)
  if envelope and not redis.call('ZSCORE', KEYS[7], id) then
    local deliveries, reset = add_delivery(KEYS[3], id, 1)
    if reset then table.insert(recounted, id) end
    local token = ARGV[2] .. '.' .. (#taken / 4) .. ':' .. deliveries
    redis.call('ZADD', KEYS[7], now + tonumber(ARGV[1]), id)
    redis.call('HSET', KEYS[2], id, token)
    for _, v in ipairs({id, string.sub(envelope, 1, 4097), deliveries, token}) do table.insert(taken, v) end
  else
    -- Already acked (no envelope) or already reserved (a duplicate): drop this copy.
    if not envelope then orphan(5, id) end
    skipped = skipped + 1
  end
end
local idle_ms = -1
if not paused and redis.call('ZCARD', KEYS[5]) == 0 then
  local first = redis.call('ZRANGE', KEYS[6], 0, 0, 'WITHSCORES')
  local due = #first > 0 and finite(first[2]) or nil  -- +inf (written by hand) is never due
  idle_ms = due == nil and -2 or math.max(0, math.min(math.ceil(due - now), 86400000))
end
return {taken, orphans, recounted, idle_ms}
