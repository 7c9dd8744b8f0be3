-- Find the longest-waiting id of a ready queue.
-- KEYS[1] ready ZSET id scored (100 - priority) * 1e13 + the ms it became due: by priority, then due time
-- The head of each priority band is that band's oldest; the lowest time among the heads is the
-- oldest of all. One ZRANGE per band present (a handful), not a scan of the queue. Members
-- scored outside the 201 bands (written by hand) are not considered.
-- Returns the id, or false when the queue is empty.
local band_width = 1e13
local best_id, best_seq = false, nil
local head = redis.call('ZRANGE', KEYS[1], 0, 'inf', 'BYSCORE', 'LIMIT', 0, 1, 'WITHSCORES')
for _ = 1, 202 do
  if not head[1] then break end
  local score = tonumber(head[2])
  local band = math.floor(score / band_width)
  if band > 200 then break end
  local seq = score - band * band_width
  if best_seq == nil or seq < best_seq then
    best_id, best_seq = head[1], seq
  end
  local next_band = string.format('%.0f', (band + 1) * band_width)
  head = redis.call('ZRANGE', KEYS[1], next_band, '+inf', 'BYSCORE', 'LIMIT', 0, 1, 'WITHSCORES')
end
return best_id
