package main

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// promqlMetricNames returns the metric names a PromQL expression selects,
// in order of first use: the identifiers that are not label names (inside
// {...} or a by/without/on/ignoring/group_left/group_right list),
// functions (followed by "("), aggregation operators or keywords. Strings,
// numbers and durations are skipped. It is no PromQL parser (promtool
// checks the syntax of the rules); it only has to find every name, which
// keeps Prometheus's own module out of this module's graph.
func promqlMetricNames(expr string) ([]string, error) {
	var names []string
	braces := 0
	groupNext, inGroup := false, false // a label list follows / is open
	for i := 0; i < len(expr); {
		c := expr[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '#': // comment to the end of the line
			for i < len(expr) && expr[i] != '\n' {
				i++
			}
		case c == '"' || c == '\'' || c == '`':
			end := closingQuote(expr, i)
			if end < 0 {
				return nil, errors.New("unterminated string")
			}
			i = end + 1
			groupNext = false
		case isDigit(c) || (c == '.' && i+1 < len(expr) && isDigit(expr[i+1])):
			for i < len(expr) && (isIdentChar(expr[i]) || expr[i] == '.') {
				i++ // 1.5, 0x1f, 1e3, 5m, 1h30m
			}
			groupNext = false
		case isIdentStart(c):
			start := i
			for i < len(expr) && isIdentChar(expr[i]) {
				i++
			}
			word := expr[start:i]
			lower := strings.ToLower(word)
			switch {
			case braces > 0 || inGroup:
				// a label name
			case slices.Contains(groupingKeywords, lower):
				groupNext = true
				continue
			case slices.Contains(promqlKeywords, lower) || slices.Contains(aggregationOps, lower):
			case nextNonSpace(expr, i) == '(':
				// a function
			case !slices.Contains(names, word):
				names = append(names, word)
			}
			groupNext = false
		default:
			switch c {
			case '{':
				braces++
			case '}':
				if braces == 0 {
					return nil, errors.New("unbalanced }")
				}
				braces--
			case '(':
				if groupNext {
					inGroup = true
				}
			case ')':
				inGroup = false
			}
			groupNext = false
			i++
		}
	}
	if braces != 0 {
		return nil, errors.New("unbalanced {")
	}
	return names, nil
}

var (
	groupingKeywords = []string{"by", "without", "on", "ignoring", "group_left", "group_right"}
	promqlKeywords   = []string{"and", "or", "unless", "bool", "offset", "atan2", "inf", "nan"}
	aggregationOps   = []string{"sum", "avg", "count", "min", "max", "group", "stddev", "stdvar",
		"topk", "bottomk", "quantile", "count_values", "limitk", "limit_ratio"}
)

// closingQuote is the index of the quote that ends the string opening at
// i (backslash escapes in "..." and '...'; none in `...`), or -1.
func closingQuote(s string, i int) int {
	q := s[i]
	for j := i + 1; j < len(s); j++ {
		switch {
		case s[j] == '\\' && q != '`':
			j++
		case s[j] == q:
			return j
		}
	}
	return -1
}

func nextNonSpace(s string, i int) byte {
	for ; i < len(s); i++ {
		if c := s[i]; c != ' ' && c != '\t' && c != '\n' && c != '\r' {
			return c
		}
	}
	return 0
}

func isDigit(c byte) bool      { return c >= '0' && c <= '9' }
func isIdentStart(c byte) bool { return c == '_' || c == ':' || (c|0x20 >= 'a' && c|0x20 <= 'z') }
func isIdentChar(c byte) bool  { return isIdentStart(c) || isDigit(c) }

func TestPromQLMetricNames(t *testing.T) {
	for _, tc := range []struct {
		expr string
		want []string
		err  bool
	}{
		{expr: `up`, want: []string{"up"}},
		{expr: `devicegate_a > devicegate_b`, want: []string{"devicegate_a", "devicegate_b"}},
		{expr: `sum by (reason, instance) (rate(devicegate_x_total{decision="deny", reason=~"a|b"}[5m]))`, want: []string{"devicegate_x_total"}},
		{expr: `sum(rate(m_total[5m])) by (le) / ignoring(code) group_left(job) other`, want: []string{"m_total", "other"}},
		{expr: `histogram_quantile(0.99, sum without (pod) (rate(h_bucket[10m]))) > 2`, want: []string{"h_bucket"}},
		{expr: `scalar(max(a offset 1m)) - a > 0`, want: []string{"a"}},
		{expr: `a - time() < 7 * 86400 and on (instance) b == bool 1`, want: []string{"a", "b"}},
		{expr: `a{l="}{)(by x"} + b{l='it\'s'} + c{l=` + "`raw`" + `}`, want: []string{"a", "b", "c"}},
		{expr: `rate(x[5m:1m] @ 1609746000) # by (y) comment`, want: []string{"x"}},
		{expr: `SUM BY (l) (x) OR Y`, want: []string{"x", "Y"}},
		{expr: `0x1f + 1.5e3 + .5 + 1h30m`, want: nil},
		{expr: `a{b="c}`, err: true},
		{expr: `a{b="c"`, err: true},
		{expr: `a}`, err: true},
	} {
		got, err := promqlMetricNames(tc.expr)
		if (err != nil) != tc.err || !slices.Equal(got, tc.want) {
			t.Errorf("%q: %v %v, want %v (error %v)", tc.expr, got, err, tc.want, tc.err)
		}
	}
}

// FuzzPromQLMetricNames: any input either fails cleanly or yields names
// that are valid metric names standing in the input.
func FuzzPromQLMetricNames(f *testing.F) {
	for _, file := range []string{alertsFile, dashboardFile} {
		raw, err := os.ReadFile(filepath.Join(repoRoot, file))
		if err != nil {
			f.Fatal(err)
		}
		for _, m := range regexp.MustCompile(`(?m)(?:expr": "|expr: )(.*)$`).FindAllStringSubmatch(string(raw), -1) {
			f.Add(m[1])
		}
	}
	valid := regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*$`)
	f.Fuzz(func(t *testing.T, expr string) {
		names, err := promqlMetricNames(expr)
		if err != nil {
			return
		}
		for _, n := range names {
			if !valid.MatchString(n) || !strings.Contains(expr, n) {
				t.Fatalf("%q: name %q", expr, n)
			}
		}
	})
}
