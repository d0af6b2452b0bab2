package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var (
	mdLink   = regexp.MustCompile(`\]\(([^)\s]+)\)`)
	codePath = regexp.MustCompile("`(\\.\\./[^`\\s]*)`")
)

// Every link of README.md and docs/*.md that is not a URL points at a file
// of this repository that exists: nothing leaves the clone (a reader has no
// ../shared/DESIGN.md), nothing is missing. Paths written in backticks
// that climb out of the repository count too.
func TestDocLinksStayInTheRepository(t *testing.T) {
	repo, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	docs, _ := filepath.Glob(filepath.Join(repo, "docs", "*.md"))
	files := append([]string{filepath.Join(repo, "README.md")}, docs...)
	checked := 0
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		name, _ := filepath.Rel(repo, file)
		var targets []string
		for _, m := range mdLink.FindAllStringSubmatch(string(data), -1) {
			targets = append(targets, m[1])
		}
		for _, m := range codePath.FindAllStringSubmatch(string(data), -1) {
			targets = append(targets, m[1])
		}
		for _, target := range targets {
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") || strings.HasPrefix(target, "#") {
				continue
			}
			path, _, _ := strings.Cut(target, "#")
			abs := filepath.Join(filepath.Dir(file), path)
			if rel, err := filepath.Rel(repo, abs); err != nil || strings.HasPrefix(rel, "..") {
				t.Errorf("%s: %s leaves the repository", name, target)
				continue
			}
			if _, err := os.Stat(abs); err != nil {
				t.Errorf("%s: %s does not exist", name, target)
			}
			checked++
		}
	}
	if checked < 10 {
		t.Fatalf("only %d links checked: the scan is broken", checked)
	}
}
