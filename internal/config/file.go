package config

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

// LoadFile sets the flags of fs from the YAML file at path, except those in
// skip (already set by a flag or the environment). The file is a mapping
// whose keys are flag names ("addr", "history-max-events", …) and whose
// values are scalars, or lists for list flags. An unknown key or an invalid
// value is an error that names the file, line, key and reason.
func LoadFile(fs *flag.FlagSet, path string, skip map[string]bool) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config file: %w", err)
	}
	return loadYAML(fs, path, data, skip)
}

func loadYAML(fs *flag.FlagSet, path string, data []byte, skip map[string]bool) error {
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil // empty file
		}
		return fmt.Errorf("%s: %w", path, err)
	}
	if len(doc.Content) == 0 {
		return nil
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return fmt.Errorf("%s:%d: the file must be a mapping of flag names to values", path, root.Line)
	}
	var errs []error
	seen := make(map[string]bool)
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		key := k.Value
		where := fmt.Sprintf("%s:%d: %s", path, k.Line, key)
		f := fs.Lookup(key)
		switch {
		case key == "config":
			errs = append(errs, fmt.Errorf("%s: a config file cannot name another config file", where))
			continue
		case f == nil:
			errs = append(errs, fmt.Errorf("%s: unknown key%s", where, suggest(fs, key)))
			continue
		case seen[key]:
			errs = append(errs, fmt.Errorf("%s: key given twice", where))
			continue
		}
		seen[key] = true
		var values []string
		switch v.Kind {
		case yaml.ScalarNode:
			if v.Tag == "!!null" {
				continue
			}
			values = []string{v.Value}
		case yaml.SequenceNode:
			for _, item := range v.Content {
				if item.Kind != yaml.ScalarNode {
					errs = append(errs, fmt.Errorf("%s: list items must be plain values", where))
					continue
				}
				values = append(values, item.Value)
			}
		default:
			errs = append(errs, fmt.Errorf("%s: value must be a plain value or a list", where))
			continue
		}
		if skip[key] {
			continue
		}
		if v.Kind == yaml.SequenceNode {
			if _, ok := f.Value.(lister); !ok {
				errs = append(errs, fmt.Errorf("%s: takes one value, not a list", where))
				continue
			}
		}
		for _, val := range values {
			if err := fs.Set(key, val); err != nil {
				errs = append(errs, fmt.Errorf("%s: invalid value %q: %v", where, val, reason(f, err)))
			}
		}
	}
	return errors.Join(errs...)
}

func suggest(fs *flag.FlagSet, key string) string {
	var close []string
	fs.VisitAll(func(f *flag.Flag) {
		k := strings.ReplaceAll(strings.ToLower(key), "_", "-")
		if k == f.Name || editDistance(k, f.Name) <= 2 || len(k) > 3 && strings.Contains(f.Name, k) {
			close = append(close, f.Name)
		}
	})
	sort.Strings(close)
	if len(close) == 0 {
		return " (see herald serve --help for the keys)"
	}
	return fmt.Sprintf(" (did you mean %s?)", strings.Join(close, " or "))
}

// WriteYAML writes the effective value of every flag of fs as a YAML
// configuration file, secrets redacted, keys sorted.
func WriteYAML(fs *flag.FlagSet) []byte {
	vals := Redacted(fs)
	keys := sortedKeys(vals)
	var b bytes.Buffer
	for _, k := range keys {
		if k == "config" {
			continue
		}
		f := fs.Lookup(k)
		if l, isList := f.Value.(lister); isList {
			items := strings.Split(vals[k], l.sep())
			if vals[k] == "" || len(l.list()) == 0 {
				fmt.Fprintf(&b, "%s: []\n", k)
				continue
			}
			fmt.Fprintf(&b, "%s:\n", k)
			for _, it := range items {
				out, _ := yaml.Marshal(it)
				fmt.Fprintf(&b, "  - %s", out)
			}
			continue
		}
		out, _ := yaml.Marshal(vals[k])
		fmt.Fprintf(&b, "%s: %s", k, out)
	}
	return b.Bytes()
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// reason explains a flag.Value's Set error; the standard types only say
// "parse error".
func reason(f *flag.Flag, err error) string {
	if err.Error() != "parse error" && err.Error() != "value out of range" {
		return err.Error()
	}
	kind, _ := flag.UnquoteUsage(f)
	switch kind {
	case "duration":
		return "not a duration (use e.g. 500ms, 15s, 1h)"
	case "int", "uint":
		return "not a whole number in range"
	case "":
		return "not a boolean (true or false)"
	}
	return "not a valid " + kind
}
