-- Delete one hash field if it still holds a value.
-- KEYS[1]: hash  ARGV[1]: field  ARGV[2]: the value it must hold
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  return redis.call('HDEL', KEYS[1], ARGV[1])
end
return 0
