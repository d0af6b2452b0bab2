-- What each proxy last reported: the policy seq it has applied (seq),
-- when it last reported (seen_at) and when seq last advanced (applied_at),
-- all microseconds since the epoch; heartbeat (microseconds) is how often
-- it reports at least, so a proxy silent for 3 heartbeats counts as gone.
-- via is 'store' or 'feed'.
CREATE TABLE proxy_reports (
  name TEXT PRIMARY KEY,
  seq BIGINT NOT NULL,
  seen_at BIGINT NOT NULL,
  applied_at BIGINT NOT NULL,
  heartbeat BIGINT NOT NULL,
  via TEXT NOT NULL
)
