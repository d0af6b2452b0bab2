package sqlstore

// Pending is how many write transactions are queued or running in a group
// commit.
func Pending(s *DB) int64 { return s.pending.Load() }
