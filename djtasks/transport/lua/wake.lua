-- Wake a parked task: move it from its queue's scheduled set to the ready set now, if it is still there.
-- KEYS[1] scheduled ZSET of the queue
-- KEYS[2] ready     ZSET of the queue
-- KEYS[3] messages  HASH id -> envelope
-- KEYS[4] sequence  STRING the arrival clock (see ready_score): a woken task is due now
-- (The caller pushes the queue's wake-up token beside the script: it is a coordination key.)
-- ARGV[1] id
-- Returns 1 if it was woken, 0 if it was not parked there any more (claimed, revoked, acked).
local id = ARGV[1]
if redis.call('ZREM', KEYS[1], id) == 0 then return 0 end
local envelope = redis.call('HGET', KEYS[3], id)
if not envelope then return 0 end
redis.call('ZADD', KEYS[2], ready_score(priority_of(envelope), KEYS[4], 0, now_ms()), id)
return 1
