-- Record one computed frame atomically: history entry, the stored form as the latest copy
-- (frames of live ranges), announcement.
-- KEYS[1]: history sorted set (score data_until ms, member frame id)
-- KEYS[2]: records hash (frame id -> record)   KEYS[3]: latest hash
-- ARGV[1]: frame id  ARGV[2]: data_until ms  ARGV[3]: history entries to keep  ARGV[4]: column width, ms
-- ARGV[5]: record  ARGV[6]: channel  ARGV[7]: announcement
-- ARGV[8]: the stored form, or "" for a frame built on request and not kept whole
local id, score, keep, column = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])

-- History keeps the newest frame of each column: a newer one of the same column replaces it.
local previous = redis.call('ZREVRANGEBYSCORE', KEYS[1], '+inf', '-inf', 'WITHSCORES', 'LIMIT', 0, 1)
local is_newest = previous[1] == nil or tonumber(previous[2]) <= score
if is_newest and previous[1] ~= nil and previous[1] ~= id
    and math.floor((tonumber(previous[2]) - 1) / column) == math.floor((score - 1) / column) then
  redis.call('ZREM', KEYS[1], previous[1])
  redis.call('HDEL', KEYS[2], previous[1])
end
redis.call('ZADD', KEYS[1], score, id)
redis.call('HSET', KEYS[2], id, ARGV[5])

if ARGV[8] ~= '' and is_newest then
  redis.call('DEL', KEYS[3])
  redis.call('HSET', KEYS[3], 'id', id, 'packed', ARGV[8], 'meta', ARGV[7])
end

local excess = redis.call('ZCARD', KEYS[1]) - keep
if excess > 0 then
  local old = redis.call('ZRANGE', KEYS[1], 0, excess - 1)
  redis.call('HDEL', KEYS[2], unpack(old))
  redis.call('ZREMRANGEBYRANK', KEYS[1], 0, excess - 1)
end
redis.call('PUBLISH', ARGV[6], ARGV[7])
return 1
