-- The record of the newest frame in history, read at one moment (a newer frame of the same
-- column replaces the newest entry and its record between two separate reads).
-- KEYS[1]: history sorted set   KEYS[2]: records hash
local newest = redis.call('ZREVRANGE', KEYS[1], 0, 0)
if newest[1] == nil then
  return false
end
return redis.call('HGET', KEYS[2], newest[1])
