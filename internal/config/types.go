package config

import (
	"fmt"
	"strconv"
	"strings"
)

// ByteSize is a size in bytes that parses "1048576", "512KiB", "1MiB",
// "1GiB", "1KB" (1000), "1MB", "1GB" and "64k"/"64m"/"1g" (binary).
type ByteSize int64

// String formats the size in the largest binary unit that divides it.
func (b *ByteSize) String() string {
	n := int64(*b)
	for _, u := range []struct {
		suffix string
		size   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n != 0 && n%u.size == 0 {
			return strconv.FormatInt(n/u.size, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10)
}

// Set parses s.
func (b *ByteSize) Set(s string) error {
	t := strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		size   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1000}, {"MB", 1000_000}, {"GB", 1000_000_000}, {"k", 1 << 10}, {"m", 1 << 20}, {"g", 1 << 30}, {"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"B", 1}} {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.size
			break
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return fmt.Errorf("not a size: %q (use e.g. 1048576, 512KiB, 1MiB)", s)
	}
	*b = ByteSize(n * mult)
	return nil
}

// Strings is a list flag: it may be repeated, and each value may hold
// several comma-separated items.
type Strings []string

// String joins the list with commas.
func (s *Strings) String() string { return strings.Join(*s, ",") }

// Set appends the comma-separated items of v.
func (s *Strings) Set(v string) error {
	for _, item := range strings.Split(v, ",") {
		if item = strings.TrimSpace(item); item != "" {
			*s = append(*s, item)
		}
	}
	return nil
}

// lister is a flag that may be repeated (and given as a YAML list); its
// String joins the items with sep.
type lister interface {
	list() []string
	sep() string
}

func (s *Strings) list() []string { return *s }
func (s *Strings) sep() string    { return "," }
