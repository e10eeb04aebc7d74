-- Store one computed frame atomically: history entry, latest copy, announcement.
-- KEYS[1]: blob hash   KEYS[2]: history sorted set   KEYS[3]: latest hash
-- ARGV[1]: frame id  ARGV[2]: score (data_until ms)  ARGV[3]: history entries to keep
-- ARGV[4]: blob key prefix  ARGV[5]: channel  ARGV[6]: event payload  ARGV[7]: column width, ms
-- ARGV[8]: n, the number of field/value pairs kept in history; then those n pairs;
-- then the field/value pairs of the latest copy.
local n = tonumber(ARGV[8])
local history, latest = {}, {}
for i = 9, 8 + 2 * n do history[#history + 1] = ARGV[i] end
for i = 9 + 2 * n, #ARGV do latest[#latest + 1] = ARGV[i] end
local id, score, column = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[7])

-- History keeps the newest frame of each column: a newer one of the same column replaces it.
local previous = redis.call('ZREVRANGEBYSCORE', KEYS[2], '+inf', '-inf', 'WITHSCORES', 'LIMIT', 0, 1)
local is_newest = previous[1] == nil or tonumber(previous[2]) <= score
if is_newest and previous[1] ~= nil and previous[1] ~= id
    and math.floor((tonumber(previous[2]) - 1) / column) == math.floor((score - 1) / column) then
  redis.call('ZREM', KEYS[2], previous[1])
  redis.call('DEL', ARGV[4] .. previous[1])
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], unpack(history))
redis.call('ZADD', KEYS[2], score, id)

-- Only a frame at least as new as the current latest replaces it.
if is_newest then
  redis.call('DEL', KEYS[3])
  redis.call('HSET', KEYS[3], 'id', id, unpack(latest))
end

local excess = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[3])
if excess > 0 then
  local old = redis.call('ZRANGE', KEYS[2], 0, excess - 1)
  for _, old_id in ipairs(old) do
    if old_id ~= id then redis.call('DEL', ARGV[4] .. old_id) end
  end
  redis.call('ZREMRANGEBYRANK', KEYS[2], 0, excess - 1)
end
redis.call('PUBLISH', ARGV[5], ARGV[6])
return 1
