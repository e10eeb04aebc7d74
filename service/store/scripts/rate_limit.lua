-- Add requests to a client's count in a fixed window; the counter expires with its window.
-- KEYS[1]: counter of this client and window. ARGV[1]: window length, ms. ARGV[2]: requests to add.
local used = redis.call('INCRBY', KEYS[1], ARGV[2])
if used == tonumber(ARGV[2]) then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return used
