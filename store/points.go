package store

import "slices"

// normalizePoints sorts and deduplicates permission point keys.
func normalizePoints(points []string) []string {
	if len(points) == 0 {
		return nil
	}
	out := slices.Clone(points)
	slices.Sort(out)
	return slices.Compact(out)
}
