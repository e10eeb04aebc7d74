-- Open one long-lived connection of a client if it has fewer than its limit open.
-- KEYS[1]: sorted set of the client's connections, scored by when each lapses (ms).
-- ARGV[1]: now, ms  ARGV[2]: when this one lapses unless renewed, ms  ARGV[3]: connection id  ARGV[4]: limit
-- Returns the number open with this one, or -(number open) when the limit is reached.
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
local open = redis.call('ZCARD', KEYS[1])
if open >= tonumber(ARGV[4]) then return -open end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3])
redis.call('PEXPIREAT', KEYS[1], ARGV[2])
return open + 1
