package config

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/devicegate/devicegate/configs"
)

// Catalog is permissions.yaml: the permission points and the positions
// (roles) with their default points.
type Catalog struct {
	Points []Point `yaml:"points"`
	Roles  []Role  `yaml:"roles"`
}

// Names are the zh-CN and en display names.
type Names struct {
	ZH string `yaml:"zh"`
	EN string `yaml:"en"`
}

// Point is one permission point.
type Point struct {
	Key  string `yaml:"key"`
	Name Names  `yaml:"name"`
	Risk string `yaml:"risk"` // high | normal
}

// Role is a position with its default permission points.
type Role struct {
	Key         string   `yaml:"key"`
	Name        Names    `yaml:"name"`
	Permissions []string `yaml:"permissions"`
}

// RequiredRoles are the positions of seeds 002/004 every catalog must have.
var RequiredRoles = []string{"customer-service", "cs-supervisor", "operations", "finance", "other"}

var keyPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)

// DefaultCatalog parses the catalog embedded from configs/permissions.yaml.
func DefaultCatalog() (*Catalog, error) { return ParseCatalog(configs.DefaultPermissions) }

// LoadCatalog reads and validates a permissions file.
func LoadCatalog(path string) (*Catalog, error) {
	data, err := readFile(path)
	if err != nil {
		return nil, err
	}
	c, err := ParseCatalog(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// ParseCatalog parses and validates catalog YAML.
func ParseCatalog(data []byte) (*Catalog, error) {
	var c Catalog
	if err := decodeStrict(data, &c); err != nil {
		return nil, err
	}
	if err := c.validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

func (c *Catalog) validate() error {
	var p problems
	if len(c.Points) == 0 {
		p.add("points", "at least one permission point is required")
	}
	seen := map[string]bool{}
	for i, pt := range c.Points {
		path := fmt.Sprintf("points[%d]", i)
		checkKey(&p, path+".key", pt.Key, seen)
		checkNames(&p, path+".name", pt.Name)
		if pt.Risk != "high" && pt.Risk != "normal" {
			p.add(path+".risk", "must be high or normal, not %q", pt.Risk)
		}
	}
	seenRoles := map[string]bool{}
	for i, r := range c.Roles {
		path := fmt.Sprintf("roles[%d]", i)
		checkKey(&p, path+".key", r.Key, seenRoles)
		checkNames(&p, path+".name", r.Name)
		for j, k := range r.Permissions {
			if !seen[k] {
				p.add(fmt.Sprintf("%s.permissions[%d]", path, j), "unknown permission point %q", k)
			}
		}
	}
	for _, k := range RequiredRoles {
		if !seenRoles[k] {
			p.add("roles", "position %q is required", k)
		}
	}
	return p.err()
}

func checkKey(p *problems, path, key string, seen map[string]bool) {
	switch {
	case !keyPattern.MatchString(key):
		p.add(path, "%q must match %s", key, keyPattern)
	case seen[key]:
		p.add(path, "duplicate key %q", key)
	}
	seen[key] = true
}

func checkNames(p *problems, path string, n Names) {
	if n.ZH == "" || n.EN == "" {
		p.add(path, "both zh and en names are required")
	}
}

// Point returns a permission point by key.
func (c *Catalog) Point(key string) (Point, bool) {
	i := slices.IndexFunc(c.Points, func(p Point) bool { return p.Key == key })
	if i < 0 {
		return Point{}, false
	}
	return c.Points[i], true
}

// Role returns a position by key.
func (c *Catalog) Role(key string) (Role, bool) {
	i := slices.IndexFunc(c.Roles, func(r Role) bool { return r.Key == key })
	if i < 0 {
		return Role{}, false
	}
	return c.Roles[i], true
}

// RoleKeys lists the position keys in catalog order.
func (c *Catalog) RoleKeys() []string {
	out := make([]string, len(c.Roles))
	for i, r := range c.Roles {
		out[i] = r.Key
	}
	return out
}

// IsHighRisk reports whether a point needs a device certificate.
func (c *Catalog) IsHighRisk(key string) bool {
	p, ok := c.Point(key)
	return ok && p.Risk == "high"
}

// Permissions is the role's defaults plus the grants, sorted and deduped.
func (c *Catalog) Permissions(role string, grants []string) []string {
	var out []string
	if r, ok := c.Role(role); ok {
		out = append(out, r.Permissions...)
	}
	out = append(out, grants...)
	sort.Strings(out)
	return slices.Compact(out)
}

// ValidateGrants checks a position and supplementary grants.
func (c *Catalog) ValidateGrants(role string, grants []string) error {
	var errs []error
	if _, ok := c.Role(role); !ok {
		errs = append(errs, fmt.Errorf("unknown position %q (one of: %s)", role, strings.Join(c.RoleKeys(), ", ")))
	}
	for _, g := range grants {
		if _, ok := c.Point(g); !ok {
			errs = append(errs, fmt.Errorf("unknown permission point %q", g))
		}
	}
	return errors.Join(errs...)
}
