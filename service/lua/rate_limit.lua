-- Count one request in a fixed window; the counter expires with its window.
-- KEYS[1]: counter of this client and window. ARGV[1]: window length, ms.
local used = redis.call('INCR', KEYS[1])
if used == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return used
