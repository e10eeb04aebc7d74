-- Idempotent upsert of fixed-width rows keyed by timestamp.
-- KEYS[1]: sorted set (score = ts ms). ARGV: ts1, row1, ts2, row2, ...
-- A row replaces whatever was stored at the same timestamp; the whole batch applies at once.
for i = 1, #ARGV, 2 do
  redis.call('ZREMRANGEBYSCORE', KEYS[1], ARGV[i], ARGV[i])
  redis.call('ZADD', KEYS[1], ARGV[i], ARGV[i + 1])
end
return #ARGV / 2
