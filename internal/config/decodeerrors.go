package config

import (
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// The YAML decoder names Go types ("field max_stalenes not found in type
// config.Proxy", "cannot unmarshal !!seq into string"). The reader wrote
// YAML keys: these turn each decoder message into the key path as written,
// what was wrong with it and, for a misspelt key, the key it most likely
// meant.

var (
	unknownField = regexp.MustCompile(`^line (\d+): field (.+) not found in type `)
	wrongType    = regexp.MustCompile(`^line (\d+): cannot unmarshal .* into (\S+)$`)
	badValue     = regexp.MustCompile(`^line (\d+): (.*)$`) // Duration's own message
)

// decodeProblem rewrites one decoder message about doc (the file's node
// tree) into a problem at its key path.
func decodeProblem(msg string, doc *yaml.Node) problem {
	if m := unknownField.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		path, _, _ := nodeAtLine(doc, line, m[2])
		known := keysAt(reflect.TypeFor[Config](), parentPath(path))
		text := fmt.Sprintf("unknown key (line %d)", line)
		if guess := closest(m[2], known); guess != "" {
			text += fmt.Sprintf("; did you mean %s?", guess)
		} else if len(known) > 0 {
			text += "; the keys here are " + strings.Join(known, ", ")
		}
		return problem{path: path, line: line, err: fmt.Errorf("%s: %s", orLine(path, line), text)}
	}
	if m := wrongType.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		path, value, _ := nodeAtLine(doc, line, "")
		return problem{path: path, line: line, err: fmt.Errorf("%s: want %s, not %s (line %d)", orLine(path, line), kindOf(m[2]), written(value), line)}
	}
	if m := badValue.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		path, _, _ := nodeAtLine(doc, line, "")
		return problem{path: path, line: line, err: fmt.Errorf("%s: %s (line %d)", orLine(path, line), m[2], line)}
	}
	return problem{err: fmt.Errorf("%s", msg)}
}

func orLine(path string, line int) string {
	if path == "" {
		return fmt.Sprintf("line %d", line)
	}
	return path
}

// nodeAtLine finds the key written at line (named key, or any key whose
// value starts on that line) and returns its path ("proxy.upstreams[0].url")
// and value node.
func nodeAtLine(doc *yaml.Node, line int, key string) (string, *yaml.Node, bool) {
	var walk func(n *yaml.Node, path string) (string, *yaml.Node, bool)
	walk = func(n *yaml.Node, path string) (string, *yaml.Node, bool) {
		n = deref(n)
		if n == nil {
			return "", nil, false
		}
		switch n.Kind {
		case yaml.DocumentNode:
			for _, c := range n.Content {
				if p, v, ok := walk(c, path); ok {
					return p, v, true
				}
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], deref(n.Content[i+1])
				p := strings.TrimPrefix(path+"."+k.Value, ".")
				if key != "" && k.Line == line && k.Value == key {
					return p, v, true
				}
				// deeper first: the innermost key on the line is meant
				if dp, dv, ok := walk(v, p); ok {
					return dp, dv, true
				}
				if key == "" && v != nil && v.Line == line {
					return p, v, true
				}
			}
		case yaml.SequenceNode:
			for i, c := range n.Content {
				if p, v, ok := walk(c, fmt.Sprintf("%s[%d]", path, i)); ok {
					return p, v, true
				}
			}
		}
		return "", nil, false
	}
	return walk(doc, "")
}

// parentPath is the path of the mapping that holds path's last key.
func parentPath(path string) string {
	i := strings.LastIndex(path, ".")
	if i < 0 {
		return ""
	}
	return path[:i]
}

// keysAt lists the YAML keys of the struct at path in t (list indexes
// ignored); nil when path does not lead to a struct.
func keysAt(t reflect.Type, path string) []string {
	for _, seg := range strings.Split(path, ".") {
		t = elem(t)
		if seg == "" {
			continue
		}
		name, _, _ := strings.Cut(seg, "[")
		if t.Kind() != reflect.Struct {
			return nil
		}
		f, ok := fieldByKey(t, name)
		if !ok {
			return nil
		}
		t = f.Type
	}
	t = elem(t)
	if t.Kind() != reflect.Struct {
		return nil
	}
	var keys []string
	for f := range t.Fields() {
		if k := yamlKey(f); k != "" && k != "-" {
			keys = append(keys, k)
		}
	}
	return keys
}

func elem(t reflect.Type) reflect.Type {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
		t = t.Elem()
	}
	return t
}

func fieldByKey(t reflect.Type, key string) (reflect.StructField, bool) {
	for f := range t.Fields() {
		if yamlKey(f) == key {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

func yamlKey(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	return name
}

// closest is the known key a misspelt one most likely meant: at most two
// edits away, or one that starts with it; "" when none is close.
func closest(key string, known []string) string {
	best, bestDist := "", 3
	for _, k := range known {
		d := editDistance(key, k)
		if d < bestDist || (d == bestDist && best != "" && k < best) {
			best, bestDist = k, d
		}
	}
	if best == "" {
		for _, k := range known {
			if len(key) >= 3 && strings.HasPrefix(k, key) {
				return k
			}
		}
	}
	return best
}

// editDistance is the Levenshtein distance of a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = slices.Min([]int{prev[j] + 1, cur[j-1] + 1, prev[j-1] + cost})
		}
		prev = cur
	}
	return prev[len(b)]
}

// kindOf says in YAML words what a Go type of the decoder's message takes.
func kindOf(goType string) string {
	t := strings.TrimPrefix(goType, "*")
	switch {
	case strings.HasPrefix(t, "[]"):
		return "a list"
	case strings.HasPrefix(t, "map["), strings.HasPrefix(t, "config."):
		return "a mapping of keys"
	case t == "bool":
		return "true or false"
	case t == "string":
		return "text"
	case strings.HasPrefix(t, "int"), strings.HasPrefix(t, "uint"):
		return "a whole number"
	case strings.HasPrefix(t, "float"):
		return "a number"
	}
	return "another kind of value"
}

// written says what the file has at a value node.
func written(n *yaml.Node) string {
	switch {
	case n == nil:
		return "this value"
	case n.Kind == yaml.SequenceNode:
		return "a list"
	case n.Kind == yaml.MappingNode:
		return "a mapping"
	}
	return strconv.Quote(n.Value)
}
