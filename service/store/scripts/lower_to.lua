-- Set a numeric hash field to a value unless it holds a lower one already.
-- KEYS[1]: hash  ARGV[1]: field  ARGV[2]: value
local current = redis.call('HGET', KEYS[1], ARGV[1])
if current == false or tonumber(ARGV[2]) < tonumber(current) then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
  return 1
end
return 0
