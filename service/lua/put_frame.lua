-- Store one computed frame atomically: blob, history index, latest copy, announcement.
-- KEYS[1]: blob hash   KEYS[2]: history sorted set   KEYS[3]: latest hash
-- ARGV[1]: frame id  ARGV[2]: score (data_until ms)  ARGV[3]: frames to keep
-- ARGV[4]: blob key prefix  ARGV[5]: channel  ARGV[6]: event payload
-- ARGV[7..]: field, value pairs of the blob
local fields = {}
for i = 7, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], unpack(fields))
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
-- Only a frame at least as new as the current latest replaces it.
local newest = redis.call('ZREVRANGE', KEYS[2], 0, 0)
if newest[1] == ARGV[1] then
  redis.call('DEL', KEYS[3])
  redis.call('HSET', KEYS[3], 'id', ARGV[1], unpack(fields))
end
local keep = tonumber(ARGV[3])
local excess = redis.call('ZCARD', KEYS[2]) - keep
if excess > 0 then
  local old = redis.call('ZRANGE', KEYS[2], 0, excess - 1)
  for _, id in ipairs(old) do
    if id ~= ARGV[1] then redis.call('DEL', ARGV[4] .. id) end
  end
  redis.call('ZREMRANGEBYRANK', KEYS[2], 0, excess - 1)
end
redis.call('PUBLISH', ARGV[5], ARGV[6])
return 1
