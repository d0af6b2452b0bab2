package config

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// problem is one thing wrong with a file: at a YAML path
// ("proxy.upstreams[0].url"), or at a line the YAML decoder named.
type problem struct {
	path string
	line int
	err  error
}

// problems collects everything wrong with a file, to report it at once.
type problems []problem

func (p *problems) add(path, format string, args ...any) {
	*p = append(*p, problem{path: path, err: fmt.Errorf("%s: %s", path, fmt.Sprintf(format, args...))})
}

// addDecodeErrors adds the decoder's unknown keys and wrong types, one
// problem each, named by their key path in doc (decodeerrors.go).
func (p *problems) addDecodeErrors(te *yaml.TypeError, doc *yaml.Node) {
	for _, msg := range te.Errors {
		*p = append(*p, decodeProblem(msg, doc))
	}
}

func (p problems) err() error {
	errs := make([]error, len(p))
	for i, pr := range p {
		errs[i] = pr.err
	}
	return errors.Join(errs...)
}

// inFileOrder sorts the problems as a reader meets them in doc: by the
// position of their key, or of its nearest parent written in the file when
// the key is left to its default. Problems at one position keep the order
// they were found in (validate.go's, which follows the Config fields);
// problems with no position at all come last. The same file therefore
// always gives the same report.
func (p problems) inFileOrder(doc *yaml.Node) problems {
	type placed struct {
		line, col int
		pr        problem
	}
	all := make([]placed, len(p))
	for i, pr := range p {
		all[i] = placed{line: pr.line, pr: pr}
		if pr.line == 0 {
			all[i].line, all[i].col = position(doc, pr.path)
		}
	}
	last := func(line int) int { return cmp.Or(line, int(^uint(0)>>1)) } // 0: no position
	slices.SortStableFunc(all, func(a, b placed) int {
		return cmp.Or(cmp.Compare(last(a.line), last(b.line)), cmp.Compare(a.col, b.col))
	})
	out := make(problems, len(all))
	for i, a := range all {
		out[i] = a.pr
	}
	return out
}

// position is the line and column of path's key in doc, or of the nearest
// parent key (or list item) written there; 0, 0 when none is.
func position(doc *yaml.Node, path string) (line, col int) {
	n := deref(doc)
	if n != nil && n.Kind == yaml.DocumentNode && len(n.Content) == 1 {
		n = deref(n.Content[0])
	}
	for _, seg := range strings.Split(path, ".") {
		name, indexes, _ := strings.Cut(seg, "[") // "hosts[0]" -> "hosts", "0]"
		key, value := lookup(n, name)
		if key == nil {
			return line, col
		}
		line, col, n = key.Line, key.Column, value
		for _, ix := range strings.Split(indexes, "[") {
			if ix == "" {
				continue
			}
			i, err := strconv.Atoi(strings.TrimSuffix(ix, "]"))
			if err != nil || n.Kind != yaml.SequenceNode || i < 0 || i >= len(n.Content) {
				return line, col
			}
			n = deref(n.Content[i])
			line, col = n.Line, n.Column
		}
	}
	return line, col
}

// lookup finds name in mapping n: its key node and its (dereferenced) value.
func lookup(n *yaml.Node, name string) (key, value *yaml.Node) {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil, nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == name {
			return n.Content[i], deref(n.Content[i+1])
		}
	}
	return nil, nil
}

func deref(n *yaml.Node) *yaml.Node {
	if n != nil && n.Kind == yaml.AliasNode {
		return n.Alias
	}
	return n
}
